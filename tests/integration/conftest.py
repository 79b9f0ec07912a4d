"""The local stack, started once per test session on free ports, and per-test isolation."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from google.api_core import exceptions
from google.cloud import tasks_v2, tasks_v2beta3
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.cloud.tasks_v2beta3.services.cloud_tasks.transports import (
    CloudTasksGrpcTransport as BetaTransport,
)

from lote.audit import scan as audit_scan
from lote.services import Services
from lote.settings import Settings
from lote.tenants import service as tenants
from lote_local.config import REPO_ROOT, StackConfig
from lote_local.stack import Stack
from tests.support import Target, make_queue

TERMINAL = {"succeeded", "failed", "canceled"}
ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every local service, healthy, on free ports, with fast test queues."""
    config = StackConfig.ephemeral(
        tmp_path_factory.mktemp("stack"),
        queue_yaml=REPO_ROOT / "tests" / "fixtures" / "queue.yaml",
        model_timeout_s=3,
        model_long_edge=64,
        admin_token=ADMIN_TOKEN,
    )
    # Singles restart the dispatcher's measures after one window (300 s deployed), so a test of
    # their `eta` does not depend on what ran in the minutes before it.
    # A blocked model is probed every 2 s (60 s deployed), so a test that fixes the key sees dispatch resume.
    running = Stack(
        config, extra_env={"LOTE_DISPATCH_MEASURE_EVERY_S": "2", "LOTE_DISPATCH_BLOCKED_PROBE_S": "2"}
    )
    running.start()
    # As under `make dev`: a function that dies comes back (tests kill the worker on purpose).
    running.supervise_in_background()
    running.write_env_file(config.state_dir / "local.env")
    yield running
    running.stop()


@contextmanager
def own_stack(folder: Path, extra_env: dict[str, str], **overrides: Any) -> Iterator[tuple[Stack, Services]]:
    """A stack of a module's own (settings the shared one must not have), with in-process services;
    stopped when the block ends."""
    config = StackConfig.ephemeral(folder, admin_token=ADMIN_TOKEN, model_long_edge=64, **overrides)
    running = Stack(config, extra_env=extra_env)
    running.start()
    try:
        running.write_env_file(config.state_dir / "local.env")
        yield running, Services.build(Settings(_env_file=config.state_dir / "local.env"))
    finally:
        running.stop()


@pytest.fixture(scope="session")
def services(stack: Stack) -> Services:
    """In-process access to the stack's Firestore, Storage, Tasks (for setup and inspection)."""
    return Services.build(Settings(_env_file=stack.config.state_dir / "local.env"))


@pytest.fixture(scope="session")
def tasks_client(stack: Stack) -> tasks_v2.CloudTasksClient:
    """The unmodified google-cloud-tasks client over a channel to the emulator."""
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.config.tasks_port}")
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


@pytest.fixture(scope="session")
def tasks_beta(stack: Stack) -> tasks_v2beta3.CloudTasksClient:
    """The v2beta3 client: the only API version that reports queue stats."""
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.config.tasks_port}")
    return tasks_v2beta3.CloudTasksClient(transport=BetaTransport(channel=channel))


@pytest.fixture
def parent() -> str:
    """A location in a project of this test's own."""
    return f"projects/t-{uuid.uuid4().hex[:12]}/locations/us-central1"


@pytest.fixture
def target() -> Iterator[Target]:
    """A scriptable HTTP target for dispatches."""
    server = Target()
    yield server
    server.close()


@dataclass
class Tenant:
    """A tenant of this test with an HTTP session that carries its key."""

    tenant_id: str
    api_key: str
    http: requests.Session
    base: str

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        """POST JSON to the api."""
        return self.http.post(self.base + path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET from the api."""
        return self.http.get(self.base + path, allow_redirects=False, **kwargs)

    def wait(self, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 30) -> dict[str, Any]:
        """Poll the generation until its status is one of `statuses` (the API's own protocol)."""
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = self.get(f"/v1/generations/{job_id}").json()
            if body["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{job_id} still {body['status']} after {timeout}s: {body}")
            time.sleep(0.05)


def audit_clean(services: Services, tenant_id: str, settle_s: float = 20.0) -> dict[str, Any]:
    """The audit of one tenant once it is clean; fails with the report if it does not get clean
    while in-flight work settles (a checker about to finish a batch, an output being deleted)."""
    deadline = time.monotonic() + settle_s
    while True:
        report = audit_scan.audit(services, tenant_id)
        if report.ok:
            return report.as_dict()
        if time.monotonic() > deadline:
            raise AssertionError(f"audit of {tenant_id}: {audit_scan.compact(report.as_dict())}")
        time.sleep(0.2)


@pytest.fixture
def new_tenant(stack: Stack, services: Services) -> Iterator[Callable[..., Tenant]]:
    """Make tenants (each test's own: tenants never see each other); every scenario ends with each
    tenant's invariant audit clean."""
    yield from tenant_factory(stack, services)


def tenant_factory(stack: Stack, services: Services) -> Iterator[Callable[..., Tenant]]:
    """new_tenant's body, for a fixture of any stack (test_dispatch.py runs its own)."""
    made: list[str] = []

    def make(name: str = "test", credits: int = 100_000, limits: dict[str, int] | None = None) -> Tenant:
        # Tests poll fast; the plan limits have tests of their own.
        limits = {"max_in_flight": 100_000, "requests_per_minute": 1_000_000,
                  "subject_requests_per_minute": 1_000_000, **(limits or {})}  # fmt: skip
        created = tenants.create_tenant(services, name, credits, limits)
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {created['api_key']}"
        made.append(created["tenant_id"])
        return Tenant(created["tenant_id"], created["api_key"], http, stack.url(stack.config.api_port))

    yield make
    for tenant_id in made:
        audit_clean(services, tenant_id)


@pytest.fixture
def tenant(new_tenant: Callable[..., Tenant]) -> Tenant:
    """One tenant for the test."""
    return new_tenant()


@pytest.fixture(scope="session")
def generation_queue(stack: Stack) -> str:
    """Full name of the stack's generation queue."""
    c = stack.config
    return f"projects/{c.project_id}/locations/{c.location}/queues/generation"


@pytest.fixture(scope="session")
def call_worker(services: Services, tasks_client: tasks_v2.CloudTasksClient) -> Callable[..., int]:
    """POST to the worker the way Cloud Tasks or Scheduler would (OIDC); returns the HTTP status."""
    parent = f"projects/worker-calls-{uuid.uuid4().hex[:6]}/locations/us-central1"
    retry = {"max_attempts": 2, "min_backoff": dt.timedelta(hours=1), "max_backoff": dt.timedelta(hours=1)}
    queue = make_queue(tasks_client, parent, name="calls", retry=retry)
    settings = services.settings

    def call(path: str, body: bytes = b"{}", email: str | None = None, audience: str | None = None) -> int:
        task = tasks_client.create_task(
            parent=queue,
            task=tasks_v2.Task(
                http_request=tasks_v2.HttpRequest(
                    url=settings.worker_url + path,
                    body=body,
                    headers={"Content-Type": "application/json"},
                    oidc_token=tasks_v2.OidcToken(
                        service_account_email=email or settings.tasks_invoker_email,
                        audience=audience or settings.worker_url,
                    ),
                )
            ),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the dispatch's end is visible only through GetTask
            try:
                seen = tasks_client.get_task(name=task.name)
            except exceptions.NotFound:
                return 200  # acknowledged (2xx) tasks are deleted
            if seen.last_attempt.response_time:
                tasks_client.delete_task(name=task.name)
                return _HTTP_FOR_CODE[seen.last_attempt.response_status.code]
            time.sleep(0.02)
        raise AssertionError("the worker call was not dispatched")

    return call


_HTTP_FOR_CODE = {3: 400, 16: 401, 7: 403, 5: 404, 8: 429, 14: 503, 13: 500, 9: 409, 4: 504}


@pytest.fixture(scope="session")
def fake(stack: Stack) -> str:
    """Base URL of the offline Stripe."""
    return stack.url(stack.config.stripe_port)


@pytest.fixture(scope="session")
def webhook(stack: Stack) -> str:
    """URL of the stripe_webhook function."""
    return stack.url(stack.config.stripe_webhook_port)
