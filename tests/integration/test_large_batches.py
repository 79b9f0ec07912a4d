"""Status reads and cancels that do not grow with the batch: past LOTE_BATCH_LIVE_COUNT_MAX items a
poll shows the tally last recorded (asking for a count when it is stale), and a cancel answers after
its first page and carries on in the background. Run on a stack of its own whose threshold is 100
items, so 1,200 items stand for 100,000."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from lote.batches import store as batch_store
from lote.services import Services
from lote_local.config import REPO_ROOT
from lote_local.stack import Stack
from tests.integration.conftest import Tenant, own_stack, tenant_factory

ITEMS = 1_200


@pytest.fixture(scope="module")
def small_threshold(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Services]]:
    env = {"LOTE_BATCH_LIVE_COUNT_MAX": "100", "LOTE_BATCH_REFRESH_S": "1"}
    queues = REPO_ROOT / "tests" / "fixtures" / "queue.yaml"
    # The worker has more threads than the generation queue's 32 concurrent dispatches, so the items
    # held at the model's gate do not starve the batch's own fan-out and refresh tasks (one local
    # process serves every queue; deployed, the worker scales out instead).
    with own_stack(tmp_path_factory.mktemp("large"), env, queue_yaml=queues, function_threads=48) as running:
        yield running


@pytest.fixture(scope="module")
def large_services(small_threshold: tuple[Stack, Services]) -> Services:
    return small_threshold[1]


@pytest.fixture
def make_tenant(small_threshold: tuple[Stack, Services]) -> Iterator[Callable[..., Tenant]]:
    yield from tenant_factory(*small_threshold)


def _until(
    read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout_s: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = read()
        if done(found):
            return found
        assert time.monotonic() < deadline, json.dumps(found)
        time.sleep(0.3)


def test_a_large_batch_is_read_from_its_recorded_tally_and_canceled_in_pages(
    make_tenant, small_threshold: tuple[Stack, Services]
):
    stack, services = small_threshold
    tenant = make_tenant()
    db = services.firestore.db
    # Every item is held at the model's gate until the test opens it: nothing finishes while the
    # tally is read and the cancel pages run, however slow the machine.
    gate = f"large-{tenant.tenant_id}"
    items = [{"reference": f"r{i}", "prompt": f"p {i} [[gate={gate}]]"} for i in range(ITEMS)]
    batch_id = tenant.post("/v1/batches", {"items": items}).json()["id"]
    status = lambda: tenant.get(f"/v1/batches/{batch_id}").json()  # noqa: E731
    try:
        # Once fanned out, a poll shows what a count recorded (the poll itself counts nothing).
        seen = _until(
            status,
            lambda b: b["fanout"]["complete"] and sum(b["counts"][s] for s in ("queued", "running")) == ITEMS,
        )
        recorded = batch_store.ref(db, batch_id).get().get("progress")
        # Five count()s read at one time: an item moving between them is counted once (they used to
        # read at five times, and a slow run counted 1,199 of 1,200).
        assert sum(recorded["tally"].values()) == ITEMS
        assert seen["counts"]["total"] == ITEMS

        answer = tenant.post(f"/v1/batches/{batch_id}/cancel").json()
        # Only marked in the request (its work does not grow with the batch); the items are canceled
        # in the background, and the answer estimates them from the recorded tally.
        assert answer["status"] == "canceled" and answer["canceled"] == 0
        assert answer["canceling"] + answer["running"] == ITEMS
        # The last page clears the flag: every queued item was canceled while the running ones were
        # held at the gate.
        _until(
            lambda: batch_store.ref(db, batch_id).get().to_dict() or {},
            lambda b: b.get("cancel_pending") is False,
        )
    finally:
        requests.post(stack.url(stack.config.model_port) + "/gates", json={"open": gate}, timeout=5)
    final = _until(status, lambda b: b["finished_at"] is not None if "finished_at" in b else False)
    assert final["status"] == "canceled"
    assert final["counts"]["canceled"] + final["counts"]["succeeded"] + final["counts"]["failed"] == ITEMS
    assert final["counts"]["canceled"] >= ITEMS - 100  # only what was already running ran
    # A second cancel of a canceled batch changes nothing and answers at once.
    again = tenant.post(f"/v1/batches/{batch_id}/cancel").json()
    assert again["canceled"] == 0 and again["canceling"] == 0


def test_a_large_batch_retries_its_failed_items_in_pages_and_charges_each_once(
    make_tenant, large_services: Services
):
    tenant = make_tenant(credits=10_000)
    db = large_services.firestore.db
    n = 600  # two pages of 500; more than the stack's threshold of 100
    items = [
        {"reference": f"r{i}", "prompt": f"p {i}" + (" [[fault=safety]]" if i % 2 else "")} for i in range(n)
    ]
    batch_id = tenant.post("/v1/batches", {"items": items}).json()["id"]
    status = lambda: tenant.get(f"/v1/batches/{batch_id}").json()  # noqa: E731
    done = _until(status, lambda b: b["status"] == "completed", 120)
    assert done["counts"]["failed"] == n // 2
    spent = 10_000 - tenant.get("/v1/account").json()["balance"]
    # Only marked in the request; the failed items are queued again page by page in the background.
    answer = tenant.post(f"/v1/batches/{batch_id}/retry", {"include_permanent": True}).json()
    assert answer["retried"] == 0 and answer["retrying"] == n // 2
    _until(
        lambda: batch_store.ref(db, batch_id).get().to_dict() or {}, lambda b: b.get("retry_pending") is None
    )
    again = _until(status, lambda b: b["status"] == "completed" and b["counts"]["failed"] == n // 2, 120)
    assert again["counts"]["succeeded"] == n // 2
    doc = batch_store.ref(db, batch_id).get().to_dict() or {}
    assert doc["completions"] == 2 and doc.get("retry_stopped") is None
    retried = [s for s in batch_store.items(db, batch_id).stream() if (s.to_dict() or {}).get("retried_at")]
    assert len(retried) == n // 2  # every failed item once, none of the succeeded ones
    # Charged again for the retried items, refunded again as they failed again: nothing more spent.
    assert 10_000 - tenant.get("/v1/account").json()["balance"] == spent
