"""What several benchmarks share: a running stack with in-process services and a bench tenant."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lote import ids
from lote.jobs import service as jobs
from lote.jobs import store, worker
from lote.jobs.schemas import GenerationRequest
from lote.services import Services
from lote.settings import Settings
from lote.tenants import service as tenants
from lote_local.config import StackConfig
from lote_local.stack import Stack

# Benchmarks measure throughput, not plan limits (those have tests of their own).
BENCH_LIMITS = {"max_in_flight": 100_000, "requests_per_minute": 1_000_000}


@dataclass(frozen=True)
class Bench:
    """A running stack, services reaching it, and a tenant with plenty of credits."""

    stack: Stack
    services: Services
    tenant_id: str
    api_key: str


@contextmanager
def running(extra_env: dict[str, str] | None = None, **overrides: object) -> Iterator[Bench]:
    """A stack on free ports for the duration of the block (stopped even when the block fails);
    `extra_env` reaches the functions (settings the launcher has no field for)."""
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(StackConfig.ephemeral(Path(tmp), "lote-bench", **overrides), extra_env=extra_env)
        stack.start()
        try:
            env_file = Path(tmp) / "local.env"
            stack.write_env_file(env_file)
            services = Services.build(Settings(_env_file=env_file))
            created = tenants.create_tenant(services, "bench", 10**9, BENCH_LIMITS)
            yield Bench(stack, services, created["tenant_id"], created["api_key"])
        finally:
            stack.stop()


def run_in_process(
    services: Services, tenant_id: str, request: GenerationRequest
) -> tuple[float, dict[str, Any]]:
    """A new job handled by the worker in this process, no task: (handler ms, the job when it ended)."""
    job_id = ids.new_id("gen")
    doc = jobs.new_job(services, tenant_id, job_id, request)
    doc["enqueued"] = True
    store.create(services.firestore.db, job_id, doc, None, (202, {}, {}))
    started = time.perf_counter()
    answer = worker.run(services, job_id, 0)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status != 200 or answer.body["result"] != "succeeded":
        raise RuntimeError(f"worker run failed: {answer}")
    return elapsed, store.ref(services.firestore.db, job_id).get().to_dict() or {}
