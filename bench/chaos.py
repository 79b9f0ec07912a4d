"""The chaos run (issue 11): a batch with mixed model faults and item webhooks, plus single
generations whose clients retry one Idempotency-Key, while the worker is SIGKILLed, the api dies
after its commits, and tasks are delivered twice on purpose. Then every promise is checked: nothing
lost or doubled, credits conserved, each event once, the invariant audit clean.

`make chaos` runs FULL and writes its section into bench/RESULTS.md; tests/integration/test_chaos.py
runs SMALL.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bench.chaos_actors import Clients, Receiver, Single, Sweeper
from bench.chaos_check import KEY_FIELD, Progress, progress, read, verdict
from bench.chaos_pipeline import PipelineCrash
from bench.chaos_timeline import Timeline, until
from lote.audit import scan
from lote.services import Services
from lote.settings import Settings
from lote.tenants import service as tenants
from lote_local.config import REPO_ROOT, StackConfig
from lote_local.stack import Stack

CREDITS = 1_000_000
LIMITS = {"max_in_flight": 100_000, "requests_per_minute": 1_000_000}
# One item in 20 of each: transient 503s, a model call slower than the timeout, a malformed answer
# (once, or every time: three in a row fail the job), a safety block. About 20% in all.
FAULTS = ("[[fault=503 times=2]]", "[[fault=timeout hang=4 times=1]]", "[[fault=malformed times=1]]",
          "[[fault=safety]]")  # fmt: skip
ALWAYS_MALFORMED = "[[fault=malformed]]"


@dataclass(frozen=True)
class ChaosSize:
    """How big the run is and how hard it is hit."""

    items: int = 2000
    singles: int = 200
    worker_kills: int = 3
    forced: int = 60  # generation tasks delivered twice on purpose (RunTask ×2 at once)
    clients: int = 4
    singles_over_s: float = 30.0  # the clients' pace: submissions overlap the kills
    sweep_every_s: float = 3.0
    repair_after_s: int = 10  # LOTE_REPAIR_AFTER_S (its minimum): how soon the sweep looks
    lease_s: int = 15  # LOTE_TASK_DISPATCH_DEADLINE_S (its minimum): a dead worker's lease
    deadline_s: float = 900.0


FULL = ChaosSize()
SMALL = ChaosSize(items=200, singles=30, worker_kills=2, forced=12, clients=3, singles_over_s=6.0,
                  sweep_every_s=2.0, deadline_s=240.0)  # fmt: skip


def prompt(kind: str, i: int) -> str:
    """A unique prompt (the model's `times=N` counts identical requests), faulty for ~20%."""
    slot = i % 20
    fault = "" if slot >= len(FAULTS) else FAULTS[slot]
    if slot == 2 and i % 40 >= 20:
        fault = ALWAYS_MALFORMED
    return f"chaos {kind} {i} {fault}".strip()


@contextmanager
def _stack(folder: Path, size: ChaosSize) -> Iterator[tuple[Stack, Services]]:
    config = StackConfig.ephemeral(folder, "lote-chaos", queue_yaml=REPO_ROOT / "tests" / "fixtures" / "queue.yaml",
                                   model_timeout_s=2, model_long_edge=64)  # fmt: skip
    env = {
        "LOTE_TASK_DISPATCH_DEADLINE_S": str(size.lease_s),
        "LOTE_REPAIR_AFTER_S": str(size.repair_after_s),
    }
    stack = Stack(config, extra_env=env)
    stack.start()
    try:
        stack.supervise_in_background()  # a killed function comes back, as Cloud Functions would
        stack.write_env_file(folder / "local.env")
        yield stack, Services.build(Settings(_env_file=folder / "local.env"))
    finally:
        stack.stop()


def run(size: ChaosSize = FULL) -> dict[str, Any]:
    """The whole scenario on a stack of its own; returns the figures (`problems` empty when it held)."""
    with tempfile.TemporaryDirectory() as tmp, _stack(Path(tmp), size) as (stack, services):
        return _scenario(stack, services, size)


def _post(http: requests.Session, url: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        try:
            response = http.post(url, json=body, headers={"Idempotency-Key": key}, timeout=60)
        except requests.ConnectionError:
            response = None
        if response is not None and response.status_code == 202:
            answer: dict[str, Any] = response.json()
            return answer
        if (response is not None and response.status_code < 500) or time.monotonic() > deadline:
            raise RuntimeError(f"POST {url}: {response and response.text}")
        time.sleep(0.2)  # a client's backoff before retrying the same key


def _scenario(stack: Stack, services: Services, size: ChaosSize) -> dict[str, Any]:
    started = time.monotonic()
    created = tenants.create_tenant(services, "chaos", CREDITS, LIMITS)
    tenant_id, api_key = created["tenant_id"], created["api_key"]
    api = stack.url(stack.config.api_port)
    receiver = Receiver()
    sweeper = Sweeper(services, size.sweep_every_s)
    singles = [
        Single(f"chaos-{i}", {"prompt": prompt("single", i), "webhook_url": receiver.url,
                              "metadata": {KEY_FIELD: f"chaos-{i}"}})
        for i in range(size.singles)
    ]  # fmt: skip
    clients = Clients(api, api_key, singles, size.clients, size.singles_over_s)
    line = Timeline(stack, services, tenant_id, started)
    crash = PipelineCrash(stack, services)
    try:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {api_key}"
        body = {"items": [{"reference": f"r{i}", "prompt": prompt("item", i)} for i in range(size.items)],
                "webhook_url": receiver.url, "webhook_events": ["generation.succeeded", "generation.failed"]}  # fmt: skip
        with line.fanout_paused():
            batch_id = _post(http, api + "/v1/batches", body, "chaos-batch")["id"]
            line.force_fanout(batch_id, -(-size.items // 500))
        sweeper.start()
        clients.start()
        last_chaos = _disrupt(line, size, batch_id, singles, crash)
        clients.join(size.deadline_s)

        def settled() -> Progress | None:
            p = progress(services, tenant_id, batch_id)
            received = len(set(receiver.snapshot()))
            seen[:] = [p, f"{received} events received", f"clients active: {clients.active()}"]
            ok = (p.jobs == size.items + size.singles and not p.open_jobs and p.batch_finished
                  and not p.pending_deliveries and received >= p.deliveries and not clients.active())  # fmt: skip
            return p if ok else None

        seen: list[Any] = []
        until(
            settled, size.deadline_s - (time.monotonic() - started), "everything final", every=0.5, last=seen
        )
        recovery_s = time.monotonic() - last_chaos
        replays = _replays(http, api, singles)
        audit = _audit_clean(services, tenant_id)
        state = read(services, tenant_id, batch_id)
        figures, problems = verdict(state, batch_id, size.items, singles, receiver.snapshot(), CREDITS)
        figures["pipeline_crash"], crashed = crash.outcome(size.deadline_s - (time.monotonic() - started))
        problems += crashed
    finally:
        clients.stop.set()
        sweeper.close()
        receiver.close()
    stranded = line.stranded_outcome(singles)
    problems += [f"replays not answering the first id: {replays}"] if replays else []
    problems += [] if audit["ok"] else [f"audit: {scan.compact(audit['summary'])}"]
    if not stranded["answered_with_their_job"] or stranded["lost"]:
        problems.append(f"the api's death after commits: {stranded}")
    if line.forced["generation_tasks"] < size.forced:
        problems.append(f"only {line.forced['generation_tasks']} generation tasks forced")
    return {
        "size": asdict(size),
        "wall_s": round(time.monotonic() - started, 1),
        "recovery_s": round(recovery_s, 1),
        # Only the sweep can give a job whose CreateTask died with the api its task; passes that end
        # in an error do not report what they repaired first, so their counts are a lower bound.
        "sweep_needed": bool(sweeper.repairs()) or stranded["left_to_the_sweep"] > 0,
        "sweep_repairs": sweeper.repairs(),
        "sweep_passes": sweeper.passes,
        "sweep_errors": dict(sweeper.errors),
        "sweep_skipped_busy": sweeper.totals["skipped_busy"],
        "sweep_sample_violations": sweeper.totals["audit_violations"],
        "sweep_last_repair_after_last_kill_s": None if sweeper.last_repair_at is None
        else round(sweeper.last_repair_at - last_chaos, 1),
        "kills": line.kills,
        "restarts": {name: stack.service(name).restarts for name in ("api", "worker")},
        "forced": dict(line.forced),
        "api_died_after_commit": stranded,
        "clients": {"retried_keys": sum(s.attempts > 1 for s in singles),
                    "connection_errors": sum(s.connection_errors for s in singles),
                    "server_errors": sum(s.server_errors for s in singles)},
        "replays_not_the_first": replays,
        "audit": {"ok": audit["ok"], "checked": audit["checked"], "violations": len(audit["violations"])},
        **figures,
        "problems": problems,
    }  # fmt: skip


def _disrupt(
    line: Timeline, size: ChaosSize, batch_id: str, singles: list[Single], crash: PipelineCrash
) -> float:
    """The api killed after commits while clients submit, then the worker killed as the batch
    progresses (the first time inside a pipeline's verify call), duplicates forced in between;
    returns when the last of it happened."""
    done = line.items_done(batch_id)
    line.force_generation(size.forced // 2)
    submitted = size.singles // 4
    until(
        lambda: sum(s.status is not None for s in singles) >= submitted, 60, f"{submitted} singles answered"
    )
    line.kill_api_after_commit()
    for n in range(size.worker_kills):
        # Early in the batch, so the dead worker's work is recovered while the rest still runs.
        share = size.items * (n + 1) // (size.worker_kills + 2)
        until(lambda share=share: done() >= share, size.deadline_s, f"{share} items before a kill")  # type: ignore[misc]
        if n == 0:
            crash.submit()
            until(crash.verifying, 60, "the pipeline's verify call in flight", every=0.02)
        line.kill("worker")
        if n == 0:
            line.force_generation(size.forced - line.forced["generation_tasks"])
        line.force_checkers()
    return time.monotonic()


def _replays(http: requests.Session, api: str, singles: list[Single]) -> int:
    """Every key sent once more: the answer must be the first one (same id), nothing new created."""
    wrong = 0
    for single in singles:
        response = http.post(api + "/v1/generations", json=single.body, timeout=30,
                             headers={"Idempotency-Key": single.key})  # fmt: skip
        wrong += response.status_code != 202 or response.json().get("id") != single.job_id
    return wrong


def _audit_clean(services: Services, tenant_id: str, settle_s: float = 30.0) -> dict[str, Any]:
    report = scan.audit(services, tenant_id)
    deadline = time.monotonic() + settle_s
    while not report.ok and time.monotonic() < deadline:  # e.g. a late duplicate still finishing
        time.sleep(0.5)
        report = scan.audit(services, tenant_id)
    return report.as_dict()


if __name__ == "__main__":
    from bench import chaos_report

    chaos_report.main()
