"""Issue 27: what observability costs per image. 300 single generations on the local stack with
tracing off and on (`LOTE_TRACE_EXPORTER` none / file): the worker's handling time per image (the
Cloud Tasks emulator's record of each generation task), the structured log bytes and lines per image
(logs/{function}.jsonl: what Cloud Logging would ingest), and the spans per image."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.common import running

IMAGES = 300
CLIENTS = 8


def _say(what: str) -> None:
    import sys

    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def _one(api: str, key: str, n: int) -> None:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    job = http.post(
        f"{api}/v1/generations", json={"prompt": f"observed room {n}", "reuse": False}, timeout=60
    )
    job_id = job.json()["id"]
    while http.get(f"{api}/v1/generations/{job_id}", timeout=60).json()["status"] not in (
        "succeeded",
        "failed",
    ):
        time.sleep(0.1)


def _handler_ms(logs: Path) -> list[float]:
    """Each generation task's handling time as the Cloud Tasks emulator recorded it."""
    found = []
    for line in (logs / "tasks.log").read_text().splitlines():
        if "queue=generation" in line and "status=200" in line:
            found.append(float(line.rsplit(" ", 1)[-1].removesuffix("ms")))
    return found


def measure(exporter: str) -> dict[str, Any]:
    # The stack's functions trace to a file by default; "none" turns it off.
    with running(extra_env={"LOTE_TRACE_EXPORTER": "none"} if exporter == "none" else None) as bench:
        api = bench.stack.url(bench.stack.config.api_port)
        logs = bench.stack.procs.log_dir
        _one(api, bench.api_key, -1)  # warm up
        before = {p.name: p.stat().st_size for p in logs.glob("*.jsonl")}
        lines_before = {p.name: len(p.read_text().splitlines()) for p in logs.glob("*.jsonl")}
        handled_before = len(_handler_ms(logs))
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda n: _one(api, bench.api_key, n), range(IMAGES)))
        time.sleep(1)
        handled = _handler_ms(logs)[handled_before:]
        sizes = {p.name: p.stat().st_size - before.get(p.name, 0) for p in logs.glob("*.jsonl")}
        lines = {
            p.name: len(p.read_text().splitlines()) - lines_before.get(p.name, 0)
            for p in logs.glob("*.jsonl")
        }
        logged = {k: v for k, v in sizes.items() if not k.endswith(".spans.jsonl")}
        spans = {k: v for k, v in lines.items() if k.endswith(".spans.jsonl")}
        return {
            "exporter": exporter, "handler_ms_p50": round(statistics.median(handled), 1),
            "handler_ms_mean": round(statistics.fmean(handled), 1), "tasks": len(handled),
            "log_bytes_per_image": round(sum(logged.values()) / IMAGES),
            "log_lines_per_image": round(sum(v for k, v in lines.items() if k in logged) / IMAGES, 2),
            "spans_per_image": round(sum(spans.values()) / IMAGES, 2),
        }  # fmt: skip


def run() -> str:
    """The section of bench/RESULTS.md."""
    rows = []
    for exporter in ("none", "file", "none", "file"):  # interleaved: the machine's drift hits both
        rows.append(measure(exporter))
        _say(f"observability: {rows[-1]}")
    off = [r for r in rows if r["exporter"] == "none"]
    on = [r for r in rows if r["exporter"] == "file"]
    lines = ["## Observability: what logs and traces cost per image (issue 27)", "",
             f"{IMAGES} single generations from {CLIENTS} clients per run, tracing off and on, two runs each, "
             "interleaved. Handling time: each generation task's, as the Cloud Tasks emulator recorded it "
             "(the offline model answers in a few ms, so this is lote's own time).", "",
             "| run | tracing | handler p50 (ms) | handler mean (ms) | log bytes / image | log lines / image | "
             "spans / image |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for number, row in enumerate(rows, 1):
        lines.append(f"| {number} | {row['exporter']} | {row['handler_ms_p50']} | {row['handler_ms_mean']} | "
                     f"{row['log_bytes_per_image']} | {row['log_lines_per_image']} | {row['spans_per_image']} |")  # fmt: skip
    overhead = statistics.median(r["handler_ms_p50"] for r in on) - statistics.median(
        r["handler_ms_p50"] for r in off
    )
    lines += ["", f"Tracing overhead per image (median of the runs' p50s, on − off): {overhead:+.1f} ms."]
    return "\n".join(lines) + "\n"
