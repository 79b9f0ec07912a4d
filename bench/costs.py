"""Cost figures shared by the benchmarks: list prices, the worker's deployed shape (read from
Terraform, so the quoted cost is the deployed one) and the worker's CPU use."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lote_local.config import REPO_ROOT

# Published list prices (shared/reference/gcp-facts.md): Firestore Standard us-central1, Cloud Tasks,
# Cloud Run functions tier 1.
PRICE = {"read": 0.03 / 100_000, "write": 0.09 / 100_000, "delete": 0.01 / 100_000, "task_op": 0.40 / 1e6,
         "vcpu_s": 0.000024, "gib_s": 0.0000025, "request": 0.40 / 1e6}  # fmt: skip
MODEL_WAIT_S = 8.0  # Gemini's image latency the cost is quoted at (issue 13)
TARGET_PER_1000 = 0.01  # infrastructure per 1,000 images (issue 13)
# A full worker instance may keep at most this share of its vCPU busy: the CPU measured here is for
# the offline model's small images, and a real Gemini output (~1.5 MB) costs more to decode and store.
CPU_CEILING = 0.25
VARIABLES = REPO_ROOT / "terraform" / "variables.tf"


@dataclass(frozen=True)
class Shape:
    """A function's deployed scaling: requests per instance, vCPU and GiB."""

    concurrency: int
    cpu: float
    memory_gib: float


def deployed(function: str = "worker") -> Shape:
    """The function's default shape in terraform/variables.tf."""
    line = re.search(rf"^\s*{function}\s*=\s*\{{(.*)\}}\s*$", VARIABLES.read_text(), re.MULTILINE)
    assert line, f"{function} has no default shape in {VARIABLES}"
    fields = dict(re.findall(r'(\w+)\s*=\s*"?([\w.]+)"?', line.group(1)))
    memory = fields["memory"]
    gib = float(memory[:-2]) / 1024 if memory.endswith("Mi") else float(memory[:-2])
    return Shape(int(fields["concurrency"]), float(fields["cpu"]), gib)


def function_per_1000(shape: Shape, wait_s: float = MODEL_WAIT_S) -> float:
    """The worker's cost per 1,000 images: instance time (billed while any request runs) shared by
    `concurrency` requests that each wait `wait_s` on the model, plus the per-request fee."""
    instance_s = wait_s / shape.concurrency
    return 1000 * (
        instance_s * (shape.cpu * PRICE["vcpu_s"] + shape.memory_gib * PRICE["gib_s"]) + PRICE["request"]
    )


def concurrency_range(shape: Shape, cpu_per_image_s: float, other_per_1000: float) -> tuple[int, int]:
    """(fewest requests per instance that meet TARGET_PER_1000 given the other parts' cost, most that
    keep a full instance's CPU under CPU_CEILING) for this vCPU and memory."""
    per_instance_s = MODEL_WAIT_S * (shape.cpu * PRICE["vcpu_s"] + shape.memory_gib * PRICE["gib_s"])
    budget = TARGET_PER_1000 / 1000 - other_per_1000 / 1000 - PRICE["request"]
    fewest = math.ceil(per_instance_s / budget) if budget > 0 else 10**6
    most = int(CPU_CEILING * shape.cpu * MODEL_WAIT_S / cpu_per_image_s) if cpu_per_image_s > 0 else 10**6
    return fewest, most


def process_group_cpu_s(leader_pid: int) -> float:
    """CPU seconds used so far by every process in the group `leader_pid` leads."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == leader_pid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
