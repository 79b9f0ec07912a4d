"""Dispatch on a stack of its own, paced by the dispatcher (20/s to start, 40/s ceiling, 1 s windows):
fair release between tenants, tier order, quota errors, the breaker, duplicate and lost ticks, and
the operators' view. Every scenario ends with its tenants' audit clean."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import requests
from google.cloud import tasks_v2
from google.cloud.firestore import FieldFilter
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from lote import timeutil
from lote.dispatch import service as dispatch
from lote.dispatch import state as dispatch_state
from lote.services import Services
from lote.settings import Settings
from lote_local.config import REPO_ROOT, StackConfig
from lote_local.stack import Stack
from tests.integration.conftest import ADMIN_TOKEN, Tenant, tenant_factory

PACE = {
    "LOTE_DISPATCH_START_RPS": "20",
    "LOTE_DISPATCH_CEILING_RPS": "40",
    "LOTE_DISPATCH_WINDOW_S": "1",
    "LOTE_DISPATCH_BLOCKED_PROBE_S": "2",
    # The tiers' shares of the online pace are what these tests are about: economy stays online.
    "LOTE_BATCH_MODE_TIERS": "[]",
}


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose dispatcher, not its queue, sets the pace; the model takes 100 ms a call."""
    config = StackConfig.ephemeral(
        tmp_path_factory.mktemp("paced"),
        queue_yaml=REPO_ROOT / "tests" / "fixtures" / "queue-paced.yaml",
        model_timeout_s=3, model_long_edge=64, model_latency_ms=100, admin_token=ADMIN_TOKEN,
    )  # fmt: skip
    running = Stack(config, extra_env=PACE)
    running.start()
    running.write_env_file(config.state_dir / "local.env")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def paced_services(paced: Stack) -> Services:
    """In-process access to the paced stack (the worker's own settings)."""
    return Services.build(Settings(_env_file=paced.config.state_dir / "local.env"))


@pytest.fixture(scope="module")
def dispatch_queue(paced: Stack) -> Iterator[Callable[[bool], None]]:
    """Pause (True) or resume (False) the paced stack's dispatch queue (PauseQueue, ResumeQueue)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{paced.config.tasks_port}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    c = paced.config
    name = f"projects/{c.project_id}/locations/{c.location}/queues/dispatch"

    def set_paused(paused: bool) -> None:
        (client.pause_queue if paused else client.resume_queue)(name=name)

    yield set_paused
    client.resume_queue(name=name)


@pytest.fixture
def make_tenant(paced: Stack, paced_services: Services) -> Iterator[Callable[..., Tenant]]:
    """Tenants of the paced stack, each audited clean at the end."""
    yield from tenant_factory(paced, paced_services)


def _submit(tenant: Tenant, n: int, priority: str = "standard", tag: str = "") -> str:
    items = [{"reference": f"{tag}{i}", "prompt": f"{tag} item {i}"} for i in range(n)]
    response = tenant.post("/v1/batches", {"items": items, "priority": priority})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait(tenant: Tenant, batch_id: str, until: Callable[[dict[str, Any]], bool] | None = None,
          timeout: float = 120) -> dict[str, Any]:  # fmt: skip
    until = until or (lambda body: body["status"] in {"completed", "canceled"})
    deadline = time.monotonic() + timeout
    while True:
        body = tenant.get(f"/v1/batches/{batch_id}").json()
        if until(body):
            return body
        assert time.monotonic() < deadline, f"batch {batch_id} not there after {timeout}s: {body}"
        time.sleep(0.1)


def _jobs(services: Services, batch_id: str) -> list[dict[str, Any]]:
    query = services.firestore.db.collection("jobs").where(filter=FieldFilter("batch_id", "==", batch_id))
    return [s.to_dict() or {} for s in query.stream()]


def _model(paced: Stack, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = paced.url(paced.config.model_port) + path
    response = requests.post(url, json=body, timeout=5) if body is not None else requests.get(url, timeout=5)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def test_a_late_small_batch_and_a_single_get_their_share_at_once(make_tenant):
    big, small, single = make_tenant(), make_tenant(), make_tenant()
    big_id = _submit(big, 150, tag="A")
    _wait(big, big_id, lambda body: body["counts"]["succeeded"] >= 10)
    small_id = _submit(small, 5, tag="B")
    job = single.post("/v1/generations", {"prompt": "one, now"}).json()
    done = _wait(small, small_id)
    assert done["status"] == "completed" and done["counts"]["succeeded"] == 5
    assert single.wait(job["id"])["status"] == "succeeded"
    # Neither waited behind the 150 items queued ahead of them.
    ahead = big.get(f"/v1/batches/{big_id}").json()
    assert ahead["counts"]["succeeded"] <= 150 - 30, ahead["counts"]
    assert _wait(big, big_id)["counts"]["succeeded"] == 150


def test_express_drains_first_and_economy_takes_only_spare_capacity(
    make_tenant, paced_services, dispatch_queue
):
    express, standard, economy = make_tenant(), make_tenant(), make_tenant()
    dispatch_queue(True)  # every lane is there before the first release
    try:
        ids = {
            "economy": _submit(economy, 20, "economy", "E"),
            "standard": _submit(standard, 40, "standard", "S"),
            "express": _submit(express, 40, "express", "X"),
        }
        owners = {"economy": economy, "standard": standard, "express": express}
        for tier, batch_id in ids.items():
            _wait(owners[tier], batch_id, lambda body: body["fanout"]["complete"])
    finally:
        dispatch_queue(False)
    for tier, batch_id in ids.items():
        assert _wait(owners[tier], batch_id)["counts"]["succeeded"] == (20 if tier == "economy" else 40)
    released = {tier: sorted(j["released_at"] for j in _jobs(paced_services, b)) for tier, b in ids.items()}
    assert released["express"][-1] < released["standard"][-1]
    assert released["economy"][0] >= released["standard"][-1]  # only once no weighted lane holds work
    alongside = sum(1 for t in released["standard"] if t <= released["express"][-1])
    assert 1 <= alongside <= 40 // 4 + 6, alongside  # about a quarter of express's share (weights 4:1)


def test_quota_errors_hold_jobs_again_without_spending_attempts(paced, make_tenant, paced_services):
    tenant = make_tenant()
    before = _model(paced, "/stats").get("quota_exhausted", 0)
    _model(paced, "/quota", {"rps": 6})
    try:
        batch_id = _submit(tenant, 30, tag="Q")
        done = _wait(tenant, batch_id)
    finally:
        _model(paced, "/quota", {"rps": 0})
    assert done["counts"]["succeeded"] == 30
    assert _model(paced, "/stats").get("quota_exhausted", 0) > before  # the pace started above 6/s
    assert {j["attempts"] for j in _jobs(paced_services, batch_id)} == {1}
    pace = dispatch_state.load(paced_services.firestore.db, "generation") or {}
    assert pace["rate"] < 20  # and it came down


def test_an_outage_opens_the_breaker_and_no_item_fails(paced, make_tenant, paced_services):
    tenant = make_tenant()
    batch_id = _submit(tenant, 60, tag="O")
    _wait(tenant, batch_id, lambda body: body["counts"]["succeeded"] >= 10)
    _model(paced, "/outage", {"seconds": 6})
    waiting = _wait(tenant, batch_id, lambda body: body["waiting_on_model"] or body["status"] == "completed")
    assert waiting["waiting_on_model"], "the batch never said it was waiting on the model"
    single = tenant.post("/v1/generations", {"prompt": "during the outage"}).json()
    assert tenant.get(f"/v1/generations/{single['id']}").json()["waiting_on_model"] is True
    done = _wait(tenant, batch_id)
    assert done["counts"]["succeeded"] == 60 and done["counts"]["failed"] == 0
    assert done["waiting_on_model"] is False
    attempts = [j["attempts"] for j in _jobs(paced_services, batch_id)]
    assert max(attempts) <= 4, attempts  # the breaker held the rest: no attempts burned while down
    assert (dispatch_state.load(paced_services.firestore.db, "generation") or {})["breaker"] == "closed"
    after = tenant.wait(single["id"], timeout=60)
    assert after["status"] == "succeeded" and after["waiting_on_model"] is False


def test_a_duplicated_tick_releases_once_and_a_lost_one_is_made_up(
    make_tenant, paced_services, dispatch_queue
):
    tenant = make_tenant()

    def later(seconds: float) -> Services:  # the dispatcher's clock, moved on instead of waiting
        return dataclasses.replace(
            paced_services, clock=lambda: timeutil.now() + dt.timedelta(seconds=seconds)
        )

    dispatch_queue(True)
    try:
        batch_id = _submit(tenant, 60, tag="D")
        _wait(tenant, batch_id, lambda body: body["fanout"]["complete"])
        services = later(2)
        window = dispatch.window_at(services.settings, services.clock().timestamp())
        answers: list[dict[str, Any]] = []
        runs = [
            threading.Thread(
                target=lambda: answers.append(dispatch.tick(services, "generation", window).body)
            )
            for _ in range(2)
        ]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        released = sum(1 for job in _jobs(paced_services, batch_id) if not job.get("hold"))
        assert sorted(a["result"] for a in answers) == ["repeated", "ticked"]
        assert [a["released"] for a in answers if a["result"] == "repeated"] == [0]
        assert sum(a["released"] for a in answers) == released > 0
        # Ticks window+1 and window+2 are lost: the next one releases for the time that passed.
        lost = dispatch.tick(later(5), "generation", window + 3).body
        assert lost["result"] == "ticked" and lost["released"] > 0
    finally:
        dispatch_queue(False)
    assert _wait(tenant, batch_id)["counts"]["succeeded"] == 60


def test_operators_see_backlog_by_tier_and_tenant(paced, make_tenant, dispatch_queue):
    first, second = make_tenant(), make_tenant()
    admin = requests.Session()
    admin.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    url = paced.url(paced.config.api_port) + "/v1/admin/scheduler"
    assert requests.get(url, timeout=10).status_code in (401, 403)
    dispatch_queue(True)
    try:
        a = _submit(first, 12, "standard", "S")
        b = _submit(second, 7, "economy", "E")
        _wait(first, a, lambda body: body["fanout"]["complete"])
        _wait(second, b, lambda body: body["fanout"]["complete"])
        view = admin.get(url, timeout=10).json()["pools"][0]
    finally:
        dispatch_queue(False)
    assert view["pool"] == "generation" and view["ceiling_per_s"] == 40 and view["start_per_s"] == 20
    assert view["breaker"] in ("closed", "open") and view["rate_per_s"] > 0
    held = {t["tenant_id"]: t["held"] for t in view["tenants"]}
    assert held[first.tenant_id] == 12 and held[second.tenant_id] == 7
    assert view["tiers"]["standard"]["held"] >= 12 and view["tiers"]["economy"]["held"] >= 7
    for tenant, batch_id in ((first, a), (second, b)):
        body = _wait(tenant, batch_id)
        assert body["status"] == "completed" and body["priority"] in ("standard", "economy")
    # The finished jobs' model calls, as Gemini reports and bills them, today (the ticks sum them).
    deadline = time.monotonic() + 30
    while (
        not (today := (_scheduler(paced)["spend"] or [{}])[-1]).get("models")
        or sum(m["calls"] for m in today["models"]) < 19
    ):
        assert time.monotonic() < deadline, today
        time.sleep(0.2)
    image = next(m for m in today["models"] if m["model"] == "gemini-2.5-flash-image")
    assert image["output_tokens"] >= 19 * 1290 and image["estimated_usd"] > 0 and today["estimated_usd"] > 0


def _scheduler(paced: Stack) -> dict[str, Any]:
    url = paced.url(paced.config.api_port) + "/v1/admin/scheduler"
    answer = requests.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    pool: dict[str, Any] = answer.json()["pools"][0]
    return pool


def _refunds(services: Services, tenant_id: str) -> int:
    ledger = services.firestore.db.collection("tenants").document(tenant_id).collection("ledger")
    return sum(1 for s in ledger.stream() if (s.to_dict() or {}).get("reason") == "refund")


def test_a_bad_key_pauses_dispatch_and_fixing_it_resumes_with_no_image_failed_or_refunded(
    paced, make_tenant, paced_services
):
    # Gemini's real answer to an expired key (400 INVALID_ARGUMENT, ErrorInfo API_KEY_INVALID,
    # tests/fixtures/gemini/): it used to fail and refund the whole backlog as model_invalid_argument.
    tenant = make_tenant()
    batch_id = _submit(tenant, 30, tag="K")
    _wait(tenant, batch_id, lambda body: body["counts"]["succeeded"] >= 3)
    _model(paced, "/trouble", {"recorded": "devapi-400-api-key-invalid"})
    try:
        waiting = _wait(
            tenant, batch_id, lambda b: b.get("waiting_reason") is not None or b["status"] == "completed"
        )
        assert waiting["waiting_on_model"] and waiting["waiting_reason"] == "model_key_invalid", waiting
        single = tenant.post("/v1/generations", {"prompt": "while the key is bad"}).json()
        view = tenant.get(f"/v1/generations/{single['id']}").json()
        # Queued, or running as the blocked pool's probe (which the bad key sends back to the queue).
        assert view["waiting_reason"] == "model_key_invalid" and view["status"] in ("queued", "running")
        pool = _scheduler(paced)
        assert pool["breaker"] == "blocked" and pool["blocked_reason"] == "model_key_invalid"
        assert _refunds(paced_services, tenant.tenant_id) == 0
    finally:
        _model(paced, "/trouble", {})  # the operator renews the key
    done = _wait(tenant, batch_id)
    assert (
        done["counts"]["succeeded"] == 30
        and done["counts"]["failed"] == 0
        and done.get("waiting_reason") is None
    )
    after = tenant.wait(single["id"], timeout=60)
    assert after["status"] == "succeeded" and after.get("waiting_reason") is None
    attempts = [j["attempts"] for j in _jobs(paced_services, batch_id)]
    assert max(attempts) == 1, attempts  # a refused call spends no attempt
    assert _refunds(paced_services, tenant.tenant_id) == 0
    assert (dispatch_state.load(paced_services.firestore.db, "generation") or {})["breaker"] == "closed"


def test_a_spent_day_quota_pauses_dispatch_until_it_is_lifted(paced, make_tenant, paced_services):
    # Gemini's per-day 429 (QuotaFailure GenerateRequestsPerDayPerProjectPerModel, no RetryInfo): no
    # slowing down clears it, so lote stops calling instead of hammering it all day.
    tenant = make_tenant()
    _model(
        paced, "/trouble", {"recorded": "devapi-429-per-day-quota-paid-limit-0-gemini-3-pro-image-preview"}
    )
    try:
        single = tenant.post("/v1/generations", {"prompt": "after the day's quota"}).json()
        deadline = time.monotonic() + 60
        # Until the pool's first refused call, its reason is whatever held it last (nothing, or an
        # earlier test's trouble that no probe has cleared yet).
        while (view := tenant.get(f"/v1/generations/{single['id']}").json()).get(
            "waiting_reason"
        ) != "model_quota_per_day":
            assert time.monotonic() < deadline and view["status"] in ("queued", "running"), view
            time.sleep(0.1)
    finally:
        _model(paced, "/trouble", {})
    after = tenant.wait(single["id"], timeout=60)
    assert after["status"] == "succeeded" and after["attempts"] == 1
    assert _refunds(paced_services, tenant.tenant_id) == 0
