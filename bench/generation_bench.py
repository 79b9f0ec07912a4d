"""Issue 3: accept latency, worker overhead per image, cold import time of functions/main.py."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import requests

from bench.common import run_in_process, running
from lote.jobs.schemas import GenerationRequest
from lote.services import Services
from lote_local.config import REPO_ROOT
from lote_local.stack import Stack

ACCEPTS = 200
WORKER_RUNS = 100
IMPORTS = 7


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0-1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cold_imports() -> list[float]:
    """Milliseconds to import functions/main.py in a fresh interpreter (-X importtime, cumulative)."""
    results = []
    for _ in range(IMPORTS):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import main"],
            cwd=REPO_ROOT / "functions", capture_output=True, text=True, check=True,
        )  # fmt: skip
        last = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| main")][-1]
        results.append(int(last.split("|")[1]) / 1000)
    return results


def accept_latency(stack: Stack, key: str) -> list[float]:
    """Milliseconds per POST /v1/generations over HTTP (sequential, one keep-alive connection)."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    url = stack.url(stack.config.api_port) + "/v1/generations"
    http.post(url, json={"prompt": "warm up"}, timeout=30)
    samples = []
    for i in range(ACCEPTS):
        started = time.perf_counter()
        response = http.post(url, json={"prompt": f"bench {i}"}, timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 202:
            raise RuntimeError(f"accept failed: {response.text}")
    return samples


def worker_overhead(services: Services, tenant_id: str) -> tuple[list[float], list[float]]:
    """(handler ms, handler ms minus the model call) per image, the worker run in-process."""
    totals, overheads = [], []
    for i in range(WORKER_RUNS + 1):
        elapsed, job = run_in_process(services, tenant_id, GenerationRequest(prompt=f"overhead {i}"))
        if i:  # the first run builds the clients
            totals.append(elapsed)
            overheads.append(elapsed - job["model_ms"])
    return totals, overheads


def run() -> str:
    """Markdown section with the measurements."""
    imports = cold_imports()
    with running(model_latency_ms=0) as bench:
        accepts = accept_latency(bench.stack, bench.api_key)
        totals, overheads = worker_overhead(bench.services, bench.tenant_id)

    def row(name: str, values: list[float]) -> str:
        return f"| {name} | {len(values)} | {statistics.median(values):.1f} | {pct(values, 0.95):.1f} |"

    return "\n".join([
        "## One image end to end (issue 3)",
        "",
        "Local stack, offline model at 0 ms latency (it still renders and encodes a 512 px PNG).",
        "",
        "| measurement (ms) | n | median | p95 |",
        "|---|---:|---:|---:|",
        row("accept: `POST /v1/generations` over HTTP (key + rate limit, one commit: debit, in-flight check, job, idempotency; CreateTask)", accepts),
        row("worker: one task handled in-process (claim and settle, a preconditioned write each; model call, convert, upload)", totals),
        row("worker overhead: the same minus the model call", overheads),
        row("cold import of `functions/main.py` (`python -X importtime`, cumulative)", imports),
        "",
        "Target for the cold import: under 300 ms (every Google client is built on first use).",
        "",
    ])  # fmt: skip
