"""Admissions of one tenant's many end users (issue 23): N clients each submitting single
generations as fast as they are answered, against the local stack (offline model at 0 ms, tenant
limits out of the way). One tenant's crowd is compared with the same load spread over many tenants,
in one run: with the purse (billing/purse.py) one tenant must not serialize on one document."""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

from bench.common import BENCH_LIMITS, running
from lote.tenants import service as tenants

DURATION_S = 20.0
CASES = [(32, 32), (1, 32), (1, 128)]  # (tenants, concurrent clients)
RETRY_AFTER_CAP_S = 2.0


@dataclass(frozen=True)
class Outcome:
    """One case: its answers and their latencies."""

    tenants: int
    clients: int
    seconds: float
    answers: Counter[int]
    latencies_ms: list[float]

    @property
    def accepted_per_s(self) -> float:
        return self.answers[202] / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _client(api: str, key: str, stop_at: float, out: list[tuple[int, float]]) -> None:
    """One end user: submit, wait for the answer, submit again (honouring a 429's Retry-After)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        started = time.perf_counter()
        try:
            answer = session.post(f"{api}/v1/generations", json={"prompt": f"crowd {n}"}, timeout=60)
            status = answer.status_code
        except requests.RequestException:
            status = 0  # no answer at all: counted, never hidden
            answer = None
        out.append((status, (time.perf_counter() - started) * 1000))
        if status == 429 and answer is not None:
            time.sleep(min(RETRY_AFTER_CAP_S, float(answer.headers.get("Retry-After", "1"))))


def measure(
    api: str, keys: list[str], clients: int, duration_s: float
) -> tuple[Counter[int], list[float], float]:
    """`clients` threads over `keys` (round robin) for `duration_s`: answers and latencies."""
    results: list[list[tuple[int, float]]] = [[] for _ in range(clients)]
    started = time.monotonic()
    stop_at = started + duration_s
    threads = [threading.Thread(target=_client, args=(api, keys[i % len(keys)], stop_at, results[i]))
               for i in range(clients)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    flat = [r for one in results for r in one]
    return Counter(s for s, _ in flat), [ms for _, ms in flat], elapsed


def run_cases(
    duration_s: float = DURATION_S, cases: list[tuple[int, int]] = CASES, env: dict[str, str] | None = None
) -> list[Outcome]:
    """Every case on one stack (each case's tenants fresh)."""
    outcomes = []
    with running(env, model_latency_ms=0) as bench:
        api = bench.stack.url(bench.stack.config.api_port)
        for number, (n_tenants, clients) in enumerate(cases):
            keys = [tenants.create_tenant(bench.services, f"crowd-{number}-{i}", 10**9, BENCH_LIMITS)["api_key"]
                    for i in range(n_tenants)]  # fmt: skip
            answers, latencies, elapsed = measure(api, keys, clients, duration_s)
            outcomes.append(Outcome(n_tenants, clients, elapsed, answers, latencies))
            time.sleep(5)  # the worker drains what was accepted before the next case
    return outcomes


def section(outcomes: list[Outcome], longer_wait: Outcome, duration_s: float = DURATION_S) -> str:
    """The markdown section for RESULTS.md."""
    rows = [_row(o) for o in outcomes]
    spread = next(o for o in outcomes if o.tenants > 1)
    crowd = next(o for o in outcomes if o.tenants == 1 and o.clients == max(c for _, c in CASES))
    ratio = crowd.accepted_per_s / spread.accepted_per_s
    return "\n".join(
        [
            "## Admissions: one tenant, many end users (issue 23)",
            "",
            f"N clients each submit single generations as fast as they are answered for {duration_s:.0f} s "
            "(a 429 waits its Retry-After, at most 2 s), offline model at 0 ms, tenant limits out of the way; "
            "latencies are of every answer. Default settings (16 purse slices, 16 admission turns per api "
            "instance, 300 ms wait for a turn).",
            "",
            "| tenants | concurrent clients | accepted/s | p50 | p95 | p99 | answers |",
            "|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            f"One tenant with {crowd.clients} clients accepts **{ratio:.2f}×** what {spread.tenants} tenants with "
            f"{spread.clients} clients accept (goal ≥ 0.9×); 5xx answers: "
            f"{sum(c for s, c in crowd.answers.items() if s >= 500 or s == 0)}. Before (issue 23's table, the same "
            "machine kind): 5.6 accepted/s, p50 19.9 s, p99 29.0 s, ten 503s, against 54.7/s over 32 tenants.",
            "",
            "The wait for a turn trades acceptance for latency on this machine (2 cores shared by the emulators, "
            "the functions and 128 client threads); the same crowd with `LOTE_ADMISSION_WAIT_MS=600`:",
            "",
            "| tenants | concurrent clients | accepted/s | p50 | p95 | p99 | answers |",
            "|---:|---:|---:|---:|---:|---:|---|",
            _row(longer_wait),
            "",
        ]
    )


def _row(o: Outcome) -> str:
    answers = ", ".join(f"{status} × {count:,}" for status, count in sorted(o.answers.items()))
    return (f"| {o.tenants} | {o.clients} | {o.accepted_per_s:.1f} | {o.pct(0.5):,.0f} ms | {o.pct(0.95):,.0f} ms | "
            f"{o.pct(0.99):,.0f} ms | {answers} |")  # fmt: skip


def run() -> str:
    """`python -m bench.run admission`."""
    longer = run_cases(cases=[(1, 128)], env={"LOTE_ADMISSION_WAIT_MS": "600"})[0]
    return section(run_cases(), longer)


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """For a quick look from a shell."""
    return {f"{o.tenants}x{o.clients}": {"accepted_per_s": round(o.accepted_per_s, 1),
            "p50": round(statistics.median(o.latencies_ms)), "p99": round(o.pct(0.99)),
            "answers": dict(o.answers)} for o in outcomes}  # fmt: skip


if __name__ == "__main__":
    import json
    import sys

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else DURATION_S
    extra = dict(arg.split("=", 1) for arg in sys.argv[2:])
    print(json.dumps(summary(run_cases(seconds, env=extra)), indent=1))
