"""The scheduler's promises on a small fixed grid of the simulator (bench/sim), which plays lote's own
dispatch rules against a model of Cloud Tasks and Gemini; `make bench` sweeps the whole grid."""

from __future__ import annotations

import pytest

from bench.sim import grid, world


@pytest.mark.parametrize(("scenario", "arrival"), grid.SMALL_GRID, ids=lambda v: getattr(v, "quota", v))
def test_a_cell_uses_the_quota_and_small_work_waits_at_most_twice_its_bound(scenario, arrival):
    cell = grid.measure(scenario, arrival)
    assert cell.misses() == [], grid.describe(cell)
    assert cell.quota_share is not None and cell.quota_share >= 0.95


def test_the_pace_climbs_to_a_high_quota_despite_the_latency_of_admitted_answers():
    # 500 calls/s behind 5 s of latency: before, the admitted count alone pinned the pace at 74%.
    cell = grid.measure(grid.scenario(500.0, 5.0, 1.5, 10, 1_000, 0.0, "early"), "early")
    assert cell.quota_share is not None and cell.quota_share >= 0.95


def test_items_that_fail_alone_neither_hold_the_breaker_open_nor_block_releases():
    faults = grid.FAULTS["5% of items time out, 4 crashes"]
    before = world.run(world.Scenario(quota=5.0, legacy=True, **grid.RECOVERY_BASE, **faults))  # type: ignore[arg-type]
    now = world.run(world.Scenario(quota=5.0, **grid.RECOVERY_BASE, **faults))  # type: ignore[arg-type]
    assert before.lost > 0 and before.breaker_open_s > 3600  # the chaos run, reproduced
    assert now.lost == 0 and now.breaker_open_s == 0
    clean = world.run(world.Scenario(quota=5.0, **grid.RECOVERY_BASE))  # type: ignore[arg-type]
    assert now.last_success_s <= 2 * clean.last_success_s


def test_an_outage_opens_the_breaker_for_about_its_length_and_nothing_is_lost():
    r = world.run(world.Scenario(quota=5.0, **grid.RECOVERY_BASE, outages=[(40.0, 60.0)]))  # type: ignore[arg-type]
    assert 40 <= r.breaker_open_s <= 90 and r.lost == 0 and r.failed == 0
