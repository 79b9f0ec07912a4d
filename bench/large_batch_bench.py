"""A 100,000-item batch (issue 23): it goes up the partner's way (the client uploads a manifest),
status polls while it fans out and runs (p50, p95: they must not grow with the batch), then a
cancel: how fast it answers and how long its background pages take, ending with the audit clean."""

from __future__ import annotations

import statistics
import time
from typing import Any

import requests

from bench.common import running
from lote.audit import scan
from lote_client import Lote

ITEMS = 100_000
POLL_FOR_S = 120.0
MODEL_MS = 1000


def _say(what: str) -> None:
    import sys

    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(items: int = ITEMS, poll_for_s: float = POLL_FOR_S) -> dict[str, Any]:
    """Submit, poll for `poll_for_s`, cancel, wait for the cancel to finish, audit."""
    with running(model_latency_ms=MODEL_MS) as bench:
        api = bench.stack.url(bench.stack.config.api_port)
        client = Lote(api_key=bench.api_key, base_url=api)
        started = time.perf_counter()
        batch = client.batches.create([{"reference": f"r{i}", "prompt": f"room {i}"} for i in range(items)])
        accepted_s = time.perf_counter() - started
        _say(f"accepted in {accepted_s:.1f} s")
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {bench.api_key}"
        polls: list[float] = []
        fanned_out_s = None
        until = time.monotonic() + poll_for_s
        while time.monotonic() < until:
            t = time.perf_counter()
            body = http.get(f"{api}/v1/batches/{batch.id}", timeout=120).json()
            polls.append((time.perf_counter() - t) * 1000)
            if fanned_out_s is None and body["fanout"]["complete"]:
                fanned_out_s = time.perf_counter() - started
            time.sleep(1.0)
        _say(
            f"polled {len(polls)} times, median {statistics.median(polls):.0f} ms; fanned out: {fanned_out_s}"
        )
        t = time.perf_counter()
        answer = http.post(f"{api}/v1/batches/{batch.id}/cancel", timeout=120).json()
        cancel_ms = (time.perf_counter() - t) * 1000
        _say(f"cancel answered in {cancel_ms:.0f} ms: {answer}")
        t = time.perf_counter()
        while "finished_at" not in (body := http.get(f"{api}/v1/batches/{batch.id}", timeout=120).json()):
            time.sleep(1.0)
        settled_s = time.perf_counter() - t
        _say(f"cancel carried out in {settled_s:.0f} s: {body['counts']}")
        report = scan.audit(bench.services, bench.tenant_id)
        return {
            "items": items, "accepted_s": accepted_s, "fanned_out_s": fanned_out_s, "polls": len(polls),
            "poll_p50_ms": statistics.median(polls), "poll_p95_ms": _pct(polls, 0.95), "poll_max_ms": max(polls),
            "cancel_ms": cancel_ms, "cancel_answer": answer, "cancel_settled_s": settled_s,
            "final_counts": body["counts"], "audit_ok": report.ok, "audit": report.as_dict()["summary"],
        }  # fmt: skip


def section(found: dict[str, Any]) -> str:
    """The markdown section for RESULTS.md."""
    counts = found["final_counts"]
    return "\n".join(
        [
            "## A 100,000-item batch: status and cancel (issue 23)",
            "",
            f"{found['items']:,} items submitted with the Python client (a manifest upload), offline model at "
            f"{MODEL_MS} ms, default settings (status polls count live up to 5,000 items, above that read the "
            "tally the checker recorded).",
            "",
            "| measurement | value |",
            "|---|---:|",
            f"| accepted (client: upload + POST) | {found['accepted_s']:.1f} s |",
            f"| fanned out | {found['fanned_out_s'] or float('nan'):.0f} s |",
            f"| status poll while it fans out and runs, {found['polls']} polls: p50 / p95 / max "
            f"| {found['poll_p50_ms']:.0f} / {found['poll_p95_ms']:.0f} / {found['poll_max_ms']:.0f} ms |",
            f"| cancel answered | {found['cancel_ms']:.0f} ms (canceled {found['cancel_answer']['canceled']}, "
            f"canceling {found['cancel_answer']['canceling']:,}, running {found['cancel_answer']['running']}) |",
            f"| cancel carried out (batch finished) | {found['cancel_settled_s']:.0f} s |",
            f"| final counts | {counts['succeeded']:,} succeeded, {counts['canceled']:,} canceled, "
            f"{counts['failed']} failed |",
            f"| audit | {'clean' if found['audit_ok'] else found['audit']} |",
            "",
            "Before (issue 23's report, same machine kind): every poll took 19–27 s once the batch had fanned "
            "out, and the cancel did not answer within 120 s.",
            "",
        ]
    )


def run() -> str:
    """`python -m bench.run large-batch`."""
    return section(measure())


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else ITEMS
    print(
        json.dumps(measure(n, float(sys.argv[2]) if len(sys.argv) > 2 else POLL_FOR_S), indent=1, default=str)
    )
