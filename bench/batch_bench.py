"""Issue 4: batch accept latency, fan-out rate, end-to-end throughput, Firestore ops and cost."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench import costs
from bench.common import BENCH_LIMITS
from bench.firestore_ops import counting
from lote import bulk
from lote.batches import fanout
from lote.batches import service as batches
from lote.batches import store as batch_store
from lote.batches import views as batch_views
from lote.batches.schemas import BatchRequest
from lote.dispatch import service as dispatch
from lote.jobs import worker
from lote.services import Services
from lote.settings import Settings
from lote.tenants.service import Caller
from lote_local.config import REPO_ROOT, StackConfig
from lote_local.stack import Stack

QUEUES = REPO_ROOT / "bench" / "queue-bench.yaml"
ACCEPT_SIZES = (10, 1_000, 10_000)
ACCEPT_RUNS = 5
E2E_ITEMS = 1_000
CPU_ITEMS = 300
OPS_ITEMS = 200


def _items(n: int, prompt: str = "bench") -> list[dict[str, Any]]:
    return [{"reference": f"R{i}", "prompt": f"{prompt} {i}"} for i in range(n)]


def _services(stack: Stack, folder: Path) -> Services:
    env = folder / "local.env"
    stack.write_env_file(env)
    return Services.build(Settings(_env_file=env))


def _queue(stack: Stack, name: str) -> str:
    return f"projects/{stack.config.project_id}/locations/{stack.config.location}/queues/{name}"


def accept_and_fanout(folder: Path) -> tuple[dict[int, list[float]], float]:
    """Accept latency per size (fan-out paused), then the fan-out rate of one 10,000-item batch."""
    stack = Stack(StackConfig.ephemeral(folder / "accept", queue_yaml=QUEUES))
    stack.start()
    try:
        services = _services(stack, folder)
        tasks = services.tasks.client
        tenant = stack.create_tenant("bench", 10**7, **BENCH_LIMITS)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {tenant['api_key']}"
        url = stack.url(stack.config.api_port) + "/v1/batches"
        tasks.pause_queue(name=_queue(stack, "fanout"))
        tasks.pause_queue(name=_queue(stack, "generation"))
        http.post(url, json={"items": _items(10)}, timeout=60)  # warm up
        latency: dict[int, list[float]] = {}
        for size in ACCEPT_SIZES:
            body = {"items": _items(size)}
            for _ in range(ACCEPT_RUNS):
                started = time.perf_counter()
                response = http.post(url, json=body, timeout=60)
                latency.setdefault(size, []).append((time.perf_counter() - started) * 1000)
                if response.status_code != 202:
                    raise RuntimeError(response.text)
        tasks.purge_queue(name=_queue(stack, "fanout"))
        tasks.resume_queue(name=_queue(stack, "fanout"))
        batch_id = http.post(url, json={"items": _items(10_000, "fanout")}, timeout=60).json()["id"]
        started = time.perf_counter()
        while batch_store.chunks_done(services.firestore.db, batch_id) < 20:
            time.sleep(0.1)
        rate = 10_000 / (time.perf_counter() - started)
    finally:
        stack.stop()
    return latency, rate


@dataclass
class Run:
    """One batch end to end: throughput, outcome and the worker's CPU per image."""

    items_per_s: float
    succeeded: int
    total: int
    cpu_per_image_s: float
    output_bytes: float


def end_to_end(folder: Path, items: int = E2E_ITEMS, long_edge: int = 256) -> Run:
    """A batch at 20/s with 1 s model latency: items/s from first start to last finish, outcomes,
    and the worker's CPU seconds per image (its whole process group) with the mean output size."""
    config = StackConfig.ephemeral(folder / f"e2e-{long_edge}", queue_yaml=QUEUES, model_latency_ms=1000,
                                   function_threads=80, model_long_edge=long_edge)  # fmt: skip
    stack = Stack(config)
    stack.start()
    try:
        services = _services(stack, folder)
        tenant = stack.create_tenant("bench", 10**7, **BENCH_LIMITS)
        headers = {"Authorization": f"Bearer {tenant['api_key']}"}
        api = stack.url(stack.config.api_port)
        worker_process = stack.service("worker").process
        assert worker_process is not None, "the worker is not running"
        cpu_before = costs.process_group_cpu_s(worker_process.pid)
        batch_id = requests.post(
            api + "/v1/batches", json={"items": _items(items)}, headers=headers, timeout=60
        ).json()["id"]
        while (
            requests.get(f"{api}/v1/batches/{batch_id}", headers=headers, timeout=60).json()["status"]
            != "completed"
        ):
            time.sleep(1)
        cpu_s = costs.process_group_cpu_s(worker_process.pid) - cpu_before
        docs = [d for s in batch_store.items(services.firestore.db, batch_id).stream() if (d := s.to_dict())]
    finally:
        stack.stop()
    first = min(d["started_at"] for d in docs)
    last = max(d["finished_at"] for d in docs)
    done = [d for d in docs if d["status"] == "succeeded"]
    return Run((len(docs) - 1) / (last - first).total_seconds(), len(done), len(docs), cpu_s / len(docs),
               statistics.mean(d["output"]["bytes"] for d in done))  # fmt: skip


def operations(folder: Path) -> tuple[dict[str, tuple[int, int, int]], tuple[int, int, int]]:
    """Billed Firestore ops of each step for OPS_ITEMS items, run in-process; then one 10,000-item poll."""
    stack = Stack(StackConfig.ephemeral(folder / "ops", queue_yaml=QUEUES, model_long_edge=64))
    stack.start()
    try:
        services = _services(stack, folder)
        tasks = services.tasks.client
        for queue in ("fanout", "generation", "dispatch"):
            tasks.pause_queue(name=_queue(stack, queue))  # this process runs every handler itself
        tenant = stack.create_tenant("bench", 10**7, **BENCH_LIMITS)
        caller = Caller(tenant_id=tenant["tenant_id"], key_id="bench")
        steps: dict[str, tuple[int, int, int]] = {}
        with counting() as ops:
            payload = {"items": _items(OPS_ITEMS)}
            batch_id = batches.submit(
                services, caller, payload, BatchRequest.model_validate(payload), None
            ).body["id"]
            steps["accept"] = ops.snapshot()
        with counting() as ops:
            fanout.plan(services, batch_id, 0)
            fanout.chunk(services, batch_id, 0)
            steps["fan-out"] = ops.snapshot()
        steps.update(dispatch_and_work(services, batch_id))
        with counting() as ops:
            fanout.check(services, batch_id, 0, 0)
            steps["checker (one run, settles)"] = ops.snapshot()
        payload = {"items": _items(10_000, "poll")}
        big = batches.submit(services, caller, payload, BatchRequest.model_validate(payload), None).body["id"]
        for number in range(20):
            fanout.chunk(services, big, number)
        db = services.firestore.db
        half = list(batch_store.items(db, big).limit(5_000).stream())
        bulk.write(db, updates=[(s.reference, {"status": "succeeded"}, None) for s in half])
        with counting() as ops:
            batch_views.get(services, caller, big)
            poll = ops.snapshot()
    finally:
        stack.stop()
    return steps, poll


def dispatch_and_work(services: Services, batch_id: str) -> dict[str, tuple[int, int, int]]:
    """The dispatcher's ticks, one per window, each followed by the worker running what it released,
    until the batch is done; then one more tick, which observes the last calls. The ops of the ticks
    and of the worker runs are summed apart."""
    db, pool = services.firestore.db, dispatch.pool(services.settings)
    totals = {"dispatch (release, observe)": [0, 0, 0], "worker": [0, 0, 0]}

    def add(step: str, ops: tuple[int, int, int]) -> None:
        totals[step] = [a + b for a, b in zip(totals[step], ops, strict=True)]

    while True:
        window = dispatch.window_at(services.settings, time.time())
        with counting() as ops:
            dispatch.tick(services, pool, window)
        add("dispatch (release, observe)", ops.snapshot())
        jobs = {s.id: s.to_dict() or {} for s in batch_store.items(db, batch_id).stream()}
        released = [i for i, job in jobs.items() if job["status"] == "queued" and job.get("hold") is None]
        with counting() as ops:
            for job_id in released:
                worker.run(services, job_id, 0)
        add("worker", ops.snapshot())
        if len(released) == sum(1 for job in jobs.values() if job["status"] == "queued"):
            break
        # The next tick belongs to the next window, as the dispatch queue would deliver it.
        time.sleep(max(0.0, (window + 1) * services.settings.dispatch_window_s - time.time()))
    time.sleep(max(0.0, (window + 1) * services.settings.dispatch_window_s - time.time()))
    with counting() as ops:
        dispatch.tick(services, pool, window + 1)
    add("dispatch (release, observe)", ops.snapshot())
    return {step: (r, w, d) for step, (r, w, d) in totals.items()}


def run() -> str:
    """Markdown section with the measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        latency, fanout_rate = accept_and_fanout(folder)
        e2e = end_to_end(folder)
        large = end_to_end(folder, CPU_ITEMS, long_edge=1024)
        steps, poll = operations(folder)
    med = {size: statistics.median(values) for size, values in latency.items()}
    per_image = [sum(step[k] for step in steps.values()) / OPS_ITEMS for k in range(3)]
    return "\n".join(_lines(latency, med, fanout_rate, e2e, large, steps, per_image, poll))


def _lines(
    latency: dict[int, list[float]],
    med: dict[int, float],
    fanout_rate: float,
    e2e: Run,
    large: Run,
    steps: dict[str, tuple[int, int, int]],
    per_image: list[float],
    poll: tuple[int, int, int],
) -> list[str]:
    price = costs.PRICE
    firestore_cost = 1000 * (per_image[0] * price["read"] + per_image[1] * price["write"]
                             + per_image[2] * price["delete"])  # fmt: skip
    # Per image: its task's create and delivery, a share of the fan-out's (500 items a chunk) and of
    # the checker's; a dispatch tick (create + delivery) every 2 s window serves ~16 images at 8/s.
    tasks_cost = 1000 * (1 + 1 + 2 / 500 + 0.05 + 2 / 16) * price["task_op"]
    shape = costs.deployed("worker")
    function_cost = costs.function_per_1000(shape)
    fewest, most = costs.concurrency_range(shape, large.cpu_per_image_s, firestore_cost + tasks_cost)
    total = firestore_cost + tasks_cost + function_cost
    return [
        "## Batches (issue 4)",
        "",
        f"Accept latency of `POST /v1/batches` over HTTP, {ACCEPT_RUNS} runs each (fan-out paused):",
        "",
        "| items | median ms | min ms | max ms | ratio to 10 items |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {s:,} | {med[s]:.0f} | {min(latency[s]):.0f} | {max(latency[s]):.0f} | {med[s] / med[10]:.1f}× |"
          for s in ACCEPT_SIZES],
        "",
        f"Fan-out rate (10,000 items → job documents, held for the dispatcher; fanout queue 50/s, 10 concurrent): "
        f"**{fanout_rate:,.0f} items/s**.",
        "",
        f"End to end: {e2e.total:,}-item batch, generation queue at 20/s (the dispatcher's start and ceiling), "
        f"offline model at 1 s latency: **{e2e.items_per_s:.2f} items/s** = {100 * e2e.items_per_s / 20:.1f}% of the "
        f"configured rate; {e2e.succeeded:,} of {e2e.total:,} succeeded, {e2e.total - e2e.succeeded} lost.",
        "",
        f"Billed Firestore operations counted at the client, {OPS_ITEMS}-item batch, every handler run in-process "
        "(the dispatcher ticking once per window, the worker running what each tick released):",
        "",
        "| step | reads | writes | deletes |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {r} | {w} | {d} |" for name, (r, w, d) in steps.items()],
        f"| **per image** | {per_image[0]:.2f} | {per_image[1]:.2f} | {per_image[2]:.2f} |",
        "",
        f"One status poll of a 10,000-item batch (half succeeded, half queued): **{poll[0]} billed reads**, "
        f"{poll[1]} writes (limit: 60 reads).",
        "",
        "The worker's CPU per image (its process group's user + system time over the batch, claim to finish): "
        f"**{1000 * e2e.cpu_per_image_s:.0f} ms** with {e2e.output_bytes / 1024:.0f} KiB outputs (the batch above), "
        f"**{1000 * large.cpu_per_image_s:.0f} ms** with {large.output_bytes / 1024:.0f} KiB outputs "
        f"({large.total:,} items at 1024 px).",
        "",
        f"Its concurrency follows from that. The worker waits {costs.MODEL_WAIT_S:.0f} s on Gemini per image and an "
        "instance is billed while any request runs, so its cost per image is the instance's time divided by the "
        f"requests it serves at once. With {shape.cpu:g} vCPU and {shape.memory_gib:g} GiB, meeting "
        f"${costs.TARGET_PER_1000} per 1,000 images in all needs at least **{fewest}** requests per instance; keeping a "
        f"full instance's CPU under {100 * costs.CPU_CEILING:.0f}% at {1000 * large.cpu_per_image_s:.0f} ms an image "
        f"(headroom for Gemini's ~1.5 MB outputs) allows at most **{most}**. Terraform deploys "
        f"**concurrency {shape.concurrency}** (THREADS the same){'' if fewest <= shape.concurrency <= most else ' — OUTSIDE that range'}.",
        "",
        "Infrastructure cost per 1,000 images at list prices (model cost excluded):",
        "",
        "| part | per 1,000 images | basis |",
        "|---|---:|---|",
        f"| Firestore | ${firestore_cost:.4f} | measured ops above × $0.03/100k reads, $0.09/100k writes |",
        f"| Cloud Tasks | ${tasks_cost:.4f} | create + one delivery per image, fan-out, checker and dispatch ticks' share, $0.40/M |",
        f"| Functions (worker) | ${function_cost:.4f} | {costs.MODEL_WAIT_S:.0f} s model wait, concurrency {shape.concurrency}, "
        f"{shape.cpu:g} vCPU + {shape.memory_gib:g} GiB, $0.40/M requests |",
        f"| **total** | **${total:.4f}** | target ${costs.TARGET_PER_1000}; at concurrency 8: "
        f"${total - function_cost + costs.function_per_1000(costs.Shape(8, shape.cpu, shape.memory_gib)):.4f}; "
        "earlier design's estimate: $0.42 |",
        "",
        "Retries add one Cloud Tasks delivery and two Firestore writes per extra attempt; a quota error adds a "
        "release (one more delivery, two writes). Gemini's latency is an assumption, not measured here.",
        "",
    ]  # fmt: skip
