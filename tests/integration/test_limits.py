"""Plan limits hold across function instances: two `api` processes share one Firestore count."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask.testing import FlaskClient

from lote.api.apps import build_api_app
from lote.services import Services
from lote.settings import Settings
from lote_local.config import REPO_ROOT, free_port
from lote_local.processes import Service, Supervisor
from lote_local.stack import Stack
from tests.integration.conftest import ADMIN_TOKEN


@pytest.fixture(scope="module")
def second_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another instance of the `api` function on its own port, sharing the stack's Firestore."""
    port = free_port()
    procs = Supervisor(tmp_path_factory.mktemp("second-api"))
    service = Service(
        "api-2",
        [sys.executable, "-m", "lote_local.function", "--target", "api",
         "--source", str(REPO_ROOT / "functions" / "main.py"), "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}/healthz",
        {**stack.env(), "THREADS": "8"},
    )  # fmt: skip
    procs.spawn(service)
    procs.wait_healthy([service], time.monotonic() + 60)
    yield f"http://127.0.0.1:{port}"
    procs.stop_all()


@pytest.fixture
def two_instances(stack: Stack) -> Callable[[dt.datetime], list[FlaskClient]]:
    """Two `api` apps with their own Firestore clients (two instances sharing the database) whose
    clock reads the given instant, so a test controls the rate window instead of waiting for one."""

    def build(instant: dt.datetime) -> list[FlaskClient]:
        settings = Settings(_env_file=stack.config.state_dir / "local.env")
        return [
            build_api_app(dataclasses.replace(Services.build(settings), clock=lambda: instant)).test_client()
            for _ in range(2)
        ]

    return build


def test_the_rate_limit_is_per_key_and_shared_by_instances(new_tenant, two_instances):
    tenant = new_tenant(limits={"requests_per_minute": 10})
    # The first instant of the current minute: every request lands in one window, 60 s from its end.
    start = dt.datetime.fromtimestamp(time.time() // 60 * 60, dt.UTC)
    instances = two_instances(start)
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    answers = [instances[i % 2].get("/v1/account", headers=auth) for i in range(16)]
    assert [a.status_code for a in answers] == [200] * 10 + [429] * 6
    assert [int(a.headers["RateLimit-Remaining"]) for a in answers[:10]] == list(range(9, -1, -1))
    assert {a.headers["RateLimit-Limit"] for a in answers} == {"10"}
    assert {a.headers["RateLimit-Reset"] for a in answers} == {"60"}
    refused = answers[-1]
    assert refused.json["error"]["code"] == "rate_limited"
    assert refused.json["error"]["details"] == {"limit": 10, "reset_seconds": 60}
    assert refused.headers["RateLimit-Remaining"] == "0" and refused.headers["Retry-After"] == "60"
    # Another key of the same tenant has its own budget.
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    key = requests.post(f"{tenant.base}/v1/admin/tenants/{tenant.tenant_id}/keys", json={"name": "second"},
                        headers=admin, timeout=30).json()["api_key"]  # fmt: skip
    other = instances[1].get("/v1/account", headers={"Authorization": f"Bearer {key}"})
    assert other.status_code == 200 and other.headers["RateLimit-Remaining"] == "9"
    # The next minute is a new window for the first key.
    later = two_instances(start + dt.timedelta(seconds=61))[0].get("/v1/account", headers=auth)
    assert later.status_code == 200 and later.headers["RateLimit-Remaining"] == "9"
    assert later.headers["RateLimit-Reset"] == "59"


def test_limits_can_be_changed_by_an_operator(new_tenant, stack: Stack):
    tenant = new_tenant()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{tenant.base}/v1/admin/tenants/{tenant.tenant_id}"
    changed = requests.patch(url, json={"plan": "pro", "max_in_flight": 7}, headers=admin, timeout=30)
    assert changed.status_code == 200
    assert changed.json()["plan"] == "pro" and changed.json()["limits"]["max_in_flight"] == 7
    assert changed.json()["limits"]["requests_per_minute"] == 1_000_000  # untouched
    bad = requests.patch(url, json={"max_in_flight": 0}, headers=admin, timeout=30)
    assert bad.status_code == 400 and bad.json()["error"]["details"]["errors"][0]["field"] == "max_in_flight"
    assert tenant.get("/v1/account").json()["limits"] == {
        "max_in_flight": 7,
        "requests_per_minute": 1_000_000,
        "subject_requests_per_minute": 1_000_000,
    }


def test_in_flight_limit_refuses_single_generations_but_batches_queue(
    new_tenant, second_api: str, tasks_client, generation_queue: str
):
    tenant = new_tenant(limits={"max_in_flight": 3})
    tasks_client.pause_queue(name=generation_queue)  # nothing finishes while we count
    try:
        bases = [tenant.base, second_api]
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(
                lambda i: tenant.http.post(bases[i % 2] + "/v1/generations", json={"prompt": f"p{i}"}, timeout=60),
                range(10),
            ))  # fmt: skip
        assert Counter(a.status_code for a in answers) == {202: 3, 429: 7}
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.json()["error"]["code"] == "too_many_in_flight"
        assert refused.json()["error"]["details"] == {"in_flight": 3, "limit": 3}
        assert int(refused.headers["Retry-After"]) > 0
        batch = tenant.post(
            "/v1/batches", {"items": [{"reference": str(i), "prompt": "x"} for i in range(5)]}
        )
        assert batch.status_code == 202
        account = tenant.get("/v1/account").json()
        assert account["generations_in_flight"] == 3
        # A finished generation makes room for the next.
        first = next(a for a in answers if a.status_code == 202).json()["id"]
        assert tenant.post(f"/v1/generations/{first}/cancel").status_code == 200
        assert tenant.post("/v1/generations", {"prompt": "after"}).status_code == 202
    finally:
        tasks_client.resume_queue(name=generation_queue)
