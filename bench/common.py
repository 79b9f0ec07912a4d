"""What several benchmarks share: a running stack with in-process services and a bench tenant."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
