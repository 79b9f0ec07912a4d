"""Issue 2: local stack start-up time and the Cloud Tasks emulator's dispatch-rate accuracy."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from lote_local.config import StackConfig
from lote_local.stack import Stack
from tests.support import Target, add_task, make_queue

STARTS = 3
RATES = [(10.0, 1, 60), (20.0, 1, 100), (50.0, 5, 200), (100.0, 10, 300)]


def startup(state: Path) -> list[float]:
    """Seconds from launch to every service healthy, over STARTS fresh stacks."""
    seconds = []
    for i in range(STARTS):
        stack = Stack(StackConfig.ephemeral(state / f"start{i}"))
        try:
            seconds.append(stack.start())
        finally:
            stack.stop()
    return seconds


def dispatch_accuracy(stack: Stack) -> list[tuple[float, int, int, float, float]]:
    """(configured rate, burst, tasks, achieved rate, ratio) per queue."""
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.config.tasks_port}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    parent = "projects/bench/locations/us-central1"
    rows = []
    for rate, burst, count in RATES:
        target = Target()
        try:
            queue = make_queue(client, parent, name=f"r{int(rate)}", rate=rate, burst=burst, concurrent=500)
            for _ in range(count):
                add_task(client, queue, target.url)
            hits = target.wait_for(count, timeout=count / rate * 3 + 10)
        finally:
            target.close()
        # After the initial burst the bucket refills at `rate`: measure over the paced part.
        paced = hits[burst - 1 :]
        achieved = (len(paced) - 1) / (paced[-1].at - paced[0].at)
        rows.append((rate, burst, count, achieved, achieved / rate))
    return rows


def run() -> str:
    """Markdown section with the measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        starts = startup(Path(tmp))
        stack = Stack(StackConfig.ephemeral(Path(tmp) / "rates"))
        stack.start()
        try:
            rows = dispatch_accuracy(stack)
        finally:
            stack.stop()
    lines = [
        "## Local stack (issue 2)",
        "",
        "Start-up to all services healthy (Firestore, Storage, Tasks, model, offline Stripe, api, worker, "
        "stripe_webhook), "
        f"{STARTS} cold starts: median **{statistics.median(starts):.2f} s** "
        f"(min {min(starts):.2f}, max {max(starts):.2f}). "
        "Excludes the one-time `pip install` into `.venv`.",
        "",
        "Cloud Tasks emulator dispatch rate (token bucket), achieved over the paced part after the burst:",
        "",
        "| configured rate | bucket | tasks | achieved rate | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r:.0f}/s | {b} | {n} | {a:.2f}/s | {x:.3f} |" for r, b, n, a, x in rows]
    return "\n".join(lines) + "\n"
