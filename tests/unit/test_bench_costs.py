"""bench/costs.py: the worker's deployed shape is read from Terraform, and the concurrency range
it derives is the tightest one that meets the cost target and the CPU ceiling."""

from __future__ import annotations

import re

from bench import costs


def test_the_deployed_shape_is_terraforms():
    shape = costs.deployed("worker")
    line = next(
        line for line in costs.VARIABLES.read_text().splitlines() if line.strip().startswith("worker ")
    )
    assert f"concurrency = {shape.concurrency}," in line
    assert re.search(rf'cpu\s*=\s*"{shape.cpu:g}"', line)
    assert costs.deployed("stripe_webhook").memory_gib == 0.5  # "512Mi"


def test_the_function_cost_at_concurrency_8_is_the_issues_figure():
    # Issue 13: $0.031 in all at concurrency 8, of which the worker's time is ~$0.027.
    assert round(costs.function_per_1000(costs.Shape(8, 1.0, 1.0)), 4) == 0.0269


def test_the_range_is_tight_on_both_ends():
    shape, other, cpu = costs.Shape(64, 1.0, 1.0), 0.005, 0.02
    fewest, most = costs.concurrency_range(shape, cpu, other)

    def total(concurrency: int) -> float:
        return other + costs.function_per_1000(costs.Shape(concurrency, 1.0, 1.0))

    assert total(fewest) <= costs.TARGET_PER_1000 < total(fewest - 1)
    busy = costs.MODEL_WAIT_S  # seconds of model wait each request spends on the instance
    assert most * cpu / busy <= costs.CPU_CEILING < (most + 1) * cpu / busy


def test_a_target_the_other_parts_already_exceed_has_no_concurrency():
    fewest, _ = costs.concurrency_range(costs.Shape(64, 1.0, 1.0), 0.02, costs.TARGET_PER_1000)
    assert fewest == 10**6
