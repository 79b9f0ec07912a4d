"""The worker's memory at its deployed concurrency: is 1 GiB enough for 64 images at once?

Every request holds its input photos, the base64 JSON of the model call that carries them, and the
model's answer (Gemini's images are ~1.5 MB PNGs: the offline model's `grain` knob makes its output
compress like one). The model answers after 8 s, Gemini's usual wait, so the queue keeps the
worker at its concurrency; the worker's process group's resident memory is sampled throughout.
"""

from __future__ import annotations

import io
import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image

from bench import costs
from bench.common import Bench, running
from lote.batches import store as batch_store
from lote.settings import Settings

CONCURRENCY = costs.deployed().concurrency  # terraform/variables.tf (THREADS the same)
LATENCY_MS = 8000
WAVES = 3  # each case's batch: this many full waves of CONCURRENCY requests
GRAIN = 3  # ~1.5 MB per 1024 px PNG
QUEUE = """queue:
  - name: generation
    rate: 20/s
    bucket_size: 20
    max_concurrent_requests: {concurrency}
  - name: fanout
    rate: 50/s
    bucket_size: 50
    max_concurrent_requests: 10
  - name: webhooks
    rate: 50/s
    bucket_size: 50
    max_concurrent_requests: 20
  - name: dispatch
    rate: 50/s
    bucket_size: 50
    max_concurrent_requests: 4
"""


@dataclass(frozen=True)
class Case:
    """What each request carries: how many input photos, of about how many bytes each."""

    name: str
    inputs: int
    input_bytes: int
    waves: int = WAVES

    @property
    def items(self) -> int:
        """The batch's size."""
        return self.waves * CONCURRENCY


TYPICAL = Case("one listing photo", 1, 3_000_000)
HEAVIEST = Case("the largest request accepted: 4 inputs near 10 MiB", 4, 9_800_000, waves=2)


def photo(target_bytes: int, seed: int) -> bytes:
    """A JPEG of about `target_bytes` that compresses like a photograph (noise over a gradient)."""
    size = (4000, 3000)
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    best = b""
    for share in (0.04, 0.08, 0.15, 0.25, 0.4, 0.6):
        out = io.BytesIO()
        Image.blend(base, noise, share).save(out, format="JPEG", quality=92)
        if out.tell() > target_bytes:
            break
        best = out.getvalue()
    return best


def group_rss_bytes(leader_pid: int) -> int:
    """Resident memory of every process in the group `leader_pid` leads."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) != leader_pid:
                continue
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


@dataclass(frozen=True)
class Measured:
    """One case: the worker's memory idle and at its peak, and the images made."""

    case: Case
    idle_mib: float
    peak_mib: float
    median_busy_mib: float
    succeeded: int
    output_mb: float

    @property
    def per_request_mib(self) -> float:
        """What one request in flight adds, at the peak."""
        return (self.peak_mib - self.idle_mib) / CONCURRENCY


def measure(bench: Bench, case: Case) -> Measured:
    """One batch of `case.items` requests, the worker sampled every 50 ms until it completes."""
    process = bench.stack.service("worker").process
    assert process is not None, "the worker is not running"
    bucket = bench.services.settings.input_bucket
    refs = []
    for i in range(case.inputs):
        name = f"uploads/{bench.tenant_id}/{case.inputs}-{i}.jpg"
        bench.services.storage.put_once(bucket, name, photo(case.input_bytes, i), "image/jpeg")
        refs.append(f"gs://{bucket}/{name}")
    idle = group_rss_bytes(process.pid)
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(group_rss_bytes(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    api = bench.stack.url(bench.stack.config.api_port)
    headers = {"Authorization": f"Bearer {bench.api_key}"}
    items = [{"reference": f"m{i}", "prompt": f"stage room {i} [[grain={GRAIN}]]", "images": refs}
             for i in range(case.items)]  # fmt: skip
    answer = requests.post(f"{api}/v1/batches", json={"items": items}, headers=headers, timeout=120)
    answer.raise_for_status()
    batch_id = answer.json()["id"]
    while (body := requests.get(f"{api}/v1/batches/{batch_id}", headers=headers, timeout=60).json())[
        "status"
    ] != "completed":
        time.sleep(0.5)
    done.set()
    sampler.join()
    outputs = [s.to_dict() or {} for s in batch_store.items(bench.services.firestore.db, batch_id).stream()]
    sizes = [d["output"]["bytes"] for d in outputs if d.get("output")]
    busy = sorted(samples)[len(samples) // 2 :]  # the upper half: while requests were in flight
    mib = 1024 * 1024
    return Measured(case, idle / mib, max(samples) / mib, statistics.median(busy) / mib,
                    body["counts"]["succeeded"], statistics.median(sizes) / 1e6 if sizes else 0.0)  # fmt: skip


def run() -> str:
    """Markdown section: the worker's memory at 64 requests in flight, typical and heaviest."""
    with tempfile.TemporaryDirectory() as tmp:
        queues = Path(tmp) / "queue.yaml"
        queues.write_text(QUEUE.format(concurrency=CONCURRENCY))
        env = {"LOTE_DISPATCH_CEILING_RPS": "20"}
        results = []
        for case in (TYPICAL, HEAVIEST):
            with running(env, queue_yaml=queues, model_latency_ms=LATENCY_MS, model_long_edge=1024,
                         function_threads=CONCURRENCY) as bench:  # fmt: skip
                results.append(measure(bench, case))
    return section(results)


def section(results: list[Measured]) -> str:
    """The RESULTS.md section."""
    memory_gib = costs.deployed().memory_gib
    rows = [
        f"| {r.case.name} ({r.case.inputs} × {r.case.input_bytes / 1e6:.1f} MB in, {r.output_mb:.1f} MB out) "
        f"| {r.idle_mib:.0f} | {r.median_busy_mib:.0f} | {r.peak_mib:.0f} | {r.per_request_mib:.1f} "
        f"| {r.succeeded}/{r.case.items} |"
        for r in results
    ]
    return "\n".join([
        "## The worker's memory at its concurrency",
        "",
        f"{WAVES} waves of {CONCURRENCY} images per case (2 for the heaviest) through one worker with THREADS {CONCURRENCY} (as deployed), the generation "
        f"queue at 20/s and {CONCURRENCY} concurrent requests, the model answering after {LATENCY_MS / 1000:g} s "
        f"(so {CONCURRENCY} requests are in flight at once), 1024 px PNG outputs with grain {GRAIN} (Gemini-sized). "
        "Resident memory of the worker's process group, sampled every 50 ms, MiB:",
        "",
        "| case | idle | median while busy | peak | (peak − idle) / 64 | succeeded |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Deployed: {memory_gib:g} GiB per worker instance; its attempts may reserve "
        f"{Settings(_env_file=None).worker_memory_budget_mb} MiB for their images (`LOTE_WORKER_MEMORY_BUDGET_MB`, "
        "jobs/memory.py: each reserves 6 MiB and 5 × 10 MiB per input before reading any, gives back what its inputs' "
        "sizes leave unused, and waits, or gives its job back uncounted, when there is no room; so the heaviest requests "
        "run a few at a time). Functions run with `MALLOC_MMAP_THRESHOLD_=1048576` and `MALLOC_ARENA_MAX=2`.",
        "",
    ])  # fmt: skip
