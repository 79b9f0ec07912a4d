"""Every image paid once and refunded once if it finally fails: debits, 402, refunds, concurrency."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from google.cloud.firestore import FieldFilter

from lote.billing import ledger, purse
from lote.jobs.documents import JobDoc
from lote.jobs.outcome import End, Outcome
from lote.services import Services
from lote.tenants.store import TENANTS
from tests.integration.test_batches import wait_batch


def _ledger(services: Services, tenant_id: str) -> list[dict]:
    collection = services.firestore.db.collection(TENANTS).document(tenant_id).collection(ledger.LEDGER)
    return [{"id": s.id, **(s.to_dict() or {})} for s in collection.stream()]


def _balance(services: Services, tenant_id: str) -> int:
    """The balance, after checking it equals the sum of the ledger."""
    found = purse.read(services.firestore.db, tenant_id)
    assert found is not None
    balance = found.balance
    assert balance == sum(entry["delta"] for entry in _ledger(services, tenant_id))
    return int(balance)


def _post_retrying(
    session: requests.Session, url: str, body: dict, headers: dict | None = None
) -> requests.Response:
    """POST the way a client should: one Idempotency-Key for the logical call, its 429 contention and
    overload answers honoured (their Retry-After), and a connection the server dropped sent again
    (gunicorn closes a keep-alive connection idle for 2 s, which a Retry-After sleep can outlast;
    the key makes the resend harmless)."""
    headers = {"Idempotency-Key": f"race-{uuid.uuid4()}", **(headers or {})}
    for _ in range(60):
        try:
            response = session.post(url, json=body, headers=headers, timeout=120)
        except requests.ConnectionError:
            continue
        if response.status_code != 429 or response.json()["error"]["code"] not in (
            "contention",
            "overloaded",
        ):
            return response
        time.sleep(float(response.headers.get("Retry-After", "1")))
    raise AssertionError("still contended after 60 tries")


def test_not_enough_credits_is_402_and_writes_nothing(new_tenant, services: Services):
    tenant = new_tenant(credits=1)
    response = tenant.post(
        "/v1/generations", {"preset": "virtual-staging", "images": ["gs://x/uploads/y.png"]}
    )
    assert response.status_code in (400, 402)  # the input is checked or the price (2) is refused
    response = tenant.post("/v1/generations", {"prompt": "x", "model": "gemini-3-pro-image-preview"})
    assert response.status_code == 402
    assert response.json()["error"] == {"code": "insufficient_credits", "message": response.json()["error"]["message"],
                                        "details": {"required": 4, "available": 1}}  # fmt: skip
    jobs = (
        services.firestore.db.collection("jobs")
        .where(filter=FieldFilter("tenant_id", "==", tenant.tenant_id))
        .get()
    )
    assert jobs == [] and _balance(services, tenant.tenant_id) == 1
    batch = tenant.post("/v1/batches", {"items": [{"reference": str(i), "prompt": "x"} for i in range(2)]})
    assert batch.status_code == 402 and batch.json()["error"]["details"] == {"required": 2, "available": 1}


def test_single_generations_pay_once_and_failures_are_refunded(new_tenant, services: Services, tasks_client,
                                                              generation_queue):  # fmt: skip
    tenant = new_tenant(credits=10)
    ok = tenant.post("/v1/generations", {"prompt": "fine"}).json()["id"]
    bad = tenant.post("/v1/generations", {"prompt": "no [[fault=safety]]"}).json()["id"]
    assert tenant.wait(ok)["status"] == "succeeded" and tenant.wait(bad)["status"] == "failed"
    tasks_client.pause_queue(name=generation_queue)
    try:
        queued = tenant.post("/v1/generations", {"prompt": "later"}).json()["id"]
        assert tenant.post(f"/v1/generations/{queued}/cancel").json()["status"] == "canceled"
    finally:
        tasks_client.resume_queue(name=generation_queue)
    assert _balance(services, tenant.tenant_id) == 9  # only the success is paid
    reasons = Counter((e["reason"], e["reference"]) for e in _ledger(services, tenant.tenant_id))
    assert reasons[("debit", bad)] == reasons[("refund", bad)] == 1
    assert reasons[("refund", queued)] == 1 and reasons[("refund", ok)] == 0


def test_50_concurrent_submissions_against_a_balance_of_10(new_tenant, services: Services):
    tenant = new_tenant(credits=10)
    url = tenant.base + "/v1/generations"
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(
            pool.map(
                lambda i: _post_retrying(tenant.http, url, {"prompt": f"race {i}"}).status_code, range(50)
            )
        )
    assert Counter(answers) == {202: 10, 402: 40}
    assert _balance(services, tenant.tenant_id) == 0
    debits = [e for e in _ledger(services, tenant.tenant_id) if e["reason"] == "debit"]
    # Each went through one purse slice, which reads no other part of the balance.
    assert len(debits) == 10 and all(e["balance_after"] is None for e in debits)


def test_the_same_idempotency_key_20_times_at_once_debits_once(new_tenant, services: Services):
    tenant = new_tenant(credits=100)
    url = tenant.base + "/v1/generations"
    barrier = threading.Barrier(20)

    def send(_: int) -> requests.Response:
        barrier.wait()
        return _post_retrying(tenant.http, url, {"prompt": "once"}, {"Idempotency-Key": "same"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(send, range(20)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    assert [e["reason"] for e in _ledger(services, tenant.tenant_id)].count("debit") == 1
    assert _balance(services, tenant.tenant_id) == 99


def test_a_batch_refunds_failed_and_canceled_items_once(new_tenant, services: Services, call_worker):
    tenant = new_tenant(credits=1000)
    items = [{"reference": f"B{i}", "prompt": f"b {i}" + (" [[fault=safety]]" if i % 4 == 0 else " [[latency=150]]")}
             for i in range(40)]  # fmt: skip
    batch_id = tenant.post("/v1/batches", {"items": items}).json()["id"]
    assert _balance(services, tenant.tenant_id) == 960  # one debit for the whole batch
    wait_batch(tenant, batch_id, until=lambda b: b["counts"]["succeeded"] >= 5)
    tenant.post(f"/v1/batches/{batch_id}/cancel")
    batch = wait_batch(tenant, batch_id, until=lambda b: b.get("finished_at") is not None)
    counts = batch["counts"]
    assert counts["succeeded"] + counts["failed"] + counts["canceled"] == 40 and counts["failed"] >= 1
    for seq in (0, 1):  # duplicate checker deliveries after the end change nothing
        assert (
            call_worker(
                "/tasks/batch-check", json.dumps({"batch_id": batch_id, "gen": 0, "seq": seq}).encode()
            )
            == 200
        )
    assert _balance(services, tenant.tenant_id) == 1000 - counts["succeeded"]
    refunds = [e for e in _ledger(services, tenant.tenant_id) if e["reason"] == "refund"]
    assert [e["delta"] for e in refunds] == [counts["failed"] + counts["canceled"]]


def test_retrying_failed_items_charges_them_again_and_refunds_what_fails_again(
    new_tenant, services: Services
):
    tenant = new_tenant(credits=100)
    items = [
        {"reference": f"R{i}", "prompt": f"r {i}" + (" [[fault=safety]]" if i < 3 else "")} for i in range(10)
    ]
    batch_id = tenant.post("/v1/batches", {"items": items}).json()["id"]
    wait_batch(tenant, batch_id)
    assert _balance(services, tenant.tenant_id) == 93
    # Safety blocks are permanent: a plain retry leaves them alone, asking for them retries them.
    assert tenant.post(f"/v1/batches/{batch_id}/retry", {}).json() == {"retried": 0, "retrying": 0}
    assert tenant.post(f"/v1/batches/{batch_id}/retry", {"include_permanent": True}).json() == {
        "retried": 3,
        "retrying": 0,
    }
    wait_batch(tenant, batch_id, until=lambda b: b["status"] == "completed" and b["counts"]["failed"] == 3)
    assert _balance(services, tenant.tenant_id) == 93  # charged 3 again, refunded 3 again
    reasons = Counter(e["reason"] for e in _ledger(services, tenant.tenant_id))
    assert reasons == {"grant": 1, "debit": 2, "refund": 2}


def test_a_refund_that_keeps_losing_to_a_busy_tenant_is_committed_under_a_lock(
    new_tenant, services: Services, caplog
):
    # Optimistic, the refund's write of the balance lost every race to the tenant's other writes (a
    # stream of admissions) and the finish gave up: the job sat running until its lease expired.
    import datetime as dt
    import logging

    from google.cloud.firestore import Increment

    from lote import ids
    from lote.jobs import service as jobs
    from lote.jobs import store
    from lote.jobs.schemas import GenerationRequest

    tenant = new_tenant(credits=10)
    db = services.firestore.db
    job_id = ids.new_id("gen")
    request = GenerationRequest.model_validate({"prompt": "refunded under contention"})
    doc = {**jobs.new_job(services, tenant.tenant_id, job_id, request), "enqueued": True}
    store.create(db, job_id, doc, None, (202, {}, {}))
    claim = store.claim(db, job_id, dt.timedelta(seconds=60), services.clock() + dt.timedelta(minutes=5))
    attempt = int(claim.doc["attempts"])
    assert _balance(services, tenant.tenant_id) == 10 - int(doc["price"])
    stop = threading.Event()

    def busy_tenant() -> None:  # every write changes the tenant's update time, as an admission does
        while not stop.is_set():
            db.collection(TENANTS).document(tenant.tenant_id).update({"busy": Increment(1)})

    hammers = [threading.Thread(target=busy_tenant) for _ in range(3)]
    for hammer in hammers:
        hammer.start()
    failed: JobDoc = {
        "status": "failed",
        "error": {"code": "safety_blocked", "message": "x", "retryable": False},
    }
    try:
        with caplog.at_level(logging.INFO, logger="lote.transactions"):
            written = store.settle(db, job_id, attempt, Outcome(End.FAILED, failed))
    finally:
        stop.set()
        for hammer in hammers:
            hammer.join()
    assert written == "failed"
    assert _balance(services, tenant.tenant_id) == 10  # refunded, once
    assert [e["reason"] for e in _ledger(services, tenant.tenant_id)].count("refund") == 1
    assert any("gave up" in r.getMessage() for r in caplog.records)  # it did lose every optimistic try
    db.collection(TENANTS).document(tenant.tenant_id).update({"busy": None})
