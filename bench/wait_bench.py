"""N end users of one tenant each submit one image and wait for it the web app's way (issue 23):
POST /v1/generations with `Prefer: wait=2`, then GET with `Prefer: wait=30` and If-None-Match until
it is final. Measured: how late a user learns that their image is done (the answer after the job's
`finished_at`), requests per user, and what the api holds meanwhile (threads, memory), for several
crowd sizes and api thread counts (what holds a wait: a thread and a Firestore listen stream)."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.common import running
from lote.jobs import store
from lote_local.config import REPO_ROOT

QUEUES = REPO_ROOT / "bench" / "queue-bench.yaml"
MODEL_MS = 2000
CASES = [(100, 64), (400, 64), (400, 512), (1000, 1024)]  # (end users, api threads)


@dataclass
class User:
    """One end user's run."""

    job_id: str | None = None
    seen_done: float | None = None  # wall clock when an answer showed it final
    requests: int = 0
    refused: int = 0  # 429s before its submission was accepted
    errors: int = 0


def _user(api: str, key: str, out: User, start: threading.Event) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    start.wait()
    try:
        while True:  # as the web app's api.js: a 429 waits its Retry-After and tries again
            created = session.post(f"{api}/v1/generations", json={"prompt": "a room"},
                                   headers={"Prefer": "wait=2"}, timeout=120)  # fmt: skip
            out.requests += 1
            if created.status_code != 429:
                break
            out.refused += 1
            time.sleep(float(created.headers.get("Retry-After", "5")))
        if created.status_code not in (200, 202):
            out.errors += 1
            return
        body, etag = created.json(), None
        out.job_id = body["id"]
        while body.get("status") not in ("succeeded", "failed", "canceled"):
            headers = {"Prefer": "wait=30", **({"If-None-Match": etag} if etag else {})}
            answer = session.get(f"{api}/v1/generations/{out.job_id}", headers=headers, timeout=120)
            out.requests += 1
            if answer.status_code == 200:
                body, etag = answer.json(), answer.headers.get("ETag")
            elif answer.status_code != 304:
                out.errors += 1
                time.sleep(1)
        out.seen_done = time.time()
    except requests.RequestException:
        out.errors += 1


def _api_process(port: int) -> tuple[int, int]:
    """(threads, RSS MiB) of the process serving the api's port (gunicorn's worker)."""
    best = (0, 0)
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "--target api" not in cmdline or f"--port {port}" not in cmdline:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        threads, rss = int(fields["Threads"]), int(fields["VmRSS"].split()[0]) // 1024
        best = max(best, (threads, rss))
    return best


def measure(users: int, api_threads: int) -> dict[str, Any]:
    """One crowd against a stack whose api runs `api_threads`."""
    with running(queue_yaml=QUEUES, model_latency_ms=MODEL_MS, function_threads=80, api_threads=api_threads,
                 model_long_edge=128) as bench:  # fmt: skip
        api = bench.stack.url(bench.stack.config.api_port)
        crowd = [User() for _ in range(users)]
        start = threading.Event()
        threads = [threading.Thread(target=_user, args=(api, bench.api_key, u, start)) for u in crowd]
        for t in threads:
            t.start()
        began = time.time()
        start.set()
        peak = (0, 0)
        while any(t.is_alive() for t in threads):
            peak = max(peak, _api_process(bench.stack.config.api_port))
            time.sleep(0.5)
        took = time.time() - began
        db = bench.services.firestore.db
        late = []
        for u in crowd:
            if u.job_id and u.seen_done:
                finished = store.ref(db, u.job_id).get().get("finished_at")
                late.append(u.seen_done - finished.timestamp())
        return {
            "users": users, "api_threads": api_threads, "seconds": took, "done": len(late),
            "errors": sum(u.errors for u in crowd), "requests_per_user": statistics.median(u.requests for u in crowd),
            "refused_429": sum(u.refused for u in crowd),
            "late_p50_ms": 1000 * statistics.median(late) if late else None,
            "late_p95_ms": 1000 * sorted(late)[int(0.95 * (len(late) - 1))] if late else None,
            "api_threads_peak": peak[0], "api_rss_mib_peak": peak[1],
        }  # fmt: skip


def section(found: list[dict[str, Any]]) -> str:
    """The markdown section for RESULTS.md."""
    rows = [
        f"| {f['users']:,} | {f['api_threads']} | {f['done']:,} | {f['refused_429']:,} | {f['errors']} | "
        f"{f['seconds']:.0f} s | "
        f"{f['requests_per_user']:.0f} | {f['late_p50_ms']:,.0f} ms | {f['late_p95_ms']:,.0f} ms | "
        f"{f['api_threads_peak']} | {f['api_rss_mib_peak']} MiB |"
        for f in found
    ]
    return "\n".join(
        [
            "## Waiting end users (issue 23)",
            "",
            f"One tenant's end users each submit one image and wait for it as the web app does (POST with "
            f"`Prefer: wait=2`, then GET `Prefer: wait=30` with If-None-Match until final); the model takes "
            f"{MODEL_MS / 1000:g} s and bench/queue-bench.yaml's rate drains the crowd. *Late*: how long after the "
            "job's `finished_at` its user's answer arrived. Threads and memory: the api process at its peak.",
            "",
            "| end users | api threads | images seen done | 429s (retried) | errors | crowd done in | requests per user "
            "| late p50 | late p95 | api threads (peak) | api memory (peak) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
        ]
    )


def run() -> str:
    """`python -m bench.run waits`."""
    return section([measure(users, threads) for users, threads in CASES])


if __name__ == "__main__":
    import json
    import sys

    n, k = int(sys.argv[1]), int(sys.argv[2])
    print(json.dumps(measure(n, k), indent=1, default=str))
