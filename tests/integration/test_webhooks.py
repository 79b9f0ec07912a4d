"""Signed webhooks, checked by the reference `standardwebhooks` package (not our own code)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud.firestore import FieldFilter
from standardwebhooks.webhooks import Webhook

from lote.services import Services
from tests.support import Hit, Reply, Target


def _secret(tenant) -> str:
    return tenant.get("/v1/account/webhook-secret").json()["secret"]


def _verified(secret: str, hit: Hit) -> dict[str, Any]:
    """The event, after the reference implementation accepted its signature."""
    return Webhook(secret).verify(hit.body, hit.headers)


def _deliveries(tenant, predicate: Callable[[list[dict]], bool], timeout: float = 30) -> list[dict]:
    """Poll the deliveries route until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while True:
        found = tenant.get("/v1/webhooks/deliveries").json()["deliveries"]
        if predicate(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries never matched: {found}")
        time.sleep(0.05)


def test_a_generation_event_is_signed_and_carries_the_resource(tenant, target: Target):
    secret = _secret(tenant)
    job = tenant.post(
        "/v1/generations", {"prompt": "a red chair", "webhook_url": target.url + "/hook"}
    ).json()
    [hit] = target.wait_for(1)
    event = _verified(secret, hit)
    resource = tenant.wait(job["id"])
    assert event["type"] == "generation.succeeded" and event["id"] == hit.headers["webhook-id"]
    assert event["id"].startswith("msg_") and event["created_at"]
    data = event["data"]
    assert {k: data[k] for k in ("id", "status", "model", "created_at", "finished_at")} == {
        k: resource[k] for k in ("id", "status", "model", "created_at", "finished_at")
    }
    assert data["output"]["url"] == resource["links"]["output"]  # stable: the API's redirect
    assert hit.path == "/hook" and hit.headers["Content-Type"] == "application/json"
    delivered = _deliveries(tenant, lambda d: d and d[0]["status"] == "delivered")
    assert delivered[0]["id"] == event["id"] and delivered[0]["subject"] == job["id"]
    assert [(a["status_code"], a.get("error")) for a in delivered[0]["attempts"]] == [(200, None)]
    assert delivered[0]["attempts"][0]["latency_ms"] >= 0
    one = tenant.get(f"/v1/webhooks/deliveries/{event['id']}").json()
    assert one["event"] == event


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [("broken [[fault=invalid]]", "generation.failed"), ("held", "generation.canceled")],
)
def test_failed_and_canceled_generations_are_events_too(
    tenant, target: Target, tasks_client, generation_queue: str, prompt: str, kind: str
):
    secret = _secret(tenant)
    if kind == "generation.canceled":
        tasks_client.pause_queue(name=generation_queue)
    try:
        job = tenant.post("/v1/generations", {"prompt": prompt, "webhook_url": target.url}).json()
        if kind == "generation.canceled":
            assert tenant.post(f"/v1/generations/{job['id']}/cancel").status_code == 200
        [hit] = target.wait_for(1)
    finally:
        tasks_client.resume_queue(name=generation_queue)
    event = _verified(secret, hit)
    assert event["type"] == kind and event["data"]["id"] == job["id"]


def test_a_receiver_failing_three_times_gets_the_event_once_with_four_attempts_logged(
    tenant, tasks_client, stack
):
    target = Target(lambda hit: Reply(500 if hit.index < 3 else 200))
    try:
        secret = _secret(tenant)
        tenant.post("/v1/generations", {"prompt": "x", "webhook_url": target.url})
        hits = target.wait_for(4)
        delivered = _deliveries(tenant, lambda d: d and d[0]["status"] == "delivered")
    finally:
        target.close()
    assert len({h.headers["webhook-id"] for h in hits}) == 1
    assert all(_verified(secret, h)["type"] == "generation.succeeded" for h in hits)
    assert [a["status_code"] for a in delivered[0]["attempts"]] == [500, 500, 500, 200]
    assert [a.get("error") for a in delivered[0]["attempts"]][:3] == ["HTTP 500"] * 3
    # Acknowledged: no task of this delivery is left in the webhooks queue.
    c = stack.config
    queue = f"projects/{c.project_id}/locations/{c.location}/queues/webhooks"
    assert not [t for t in tasks_client.list_tasks(parent=queue) if delivered[0]["id"] in t.name]


def test_duplicate_task_deliveries_produce_no_duplicate_events(tenant, target: Target, call_worker):
    job = tenant.post("/v1/generations", {"prompt": "x", "webhook_url": target.url}).json()
    [hit] = target.wait_for(1)
    msg_id = hit.headers["webhook-id"]
    # The generation task and the delivery task, each delivered once more by the queue.
    assert call_worker("/tasks/generate", json.dumps({"job_id": job["id"]}).encode()) == 200
    assert call_worker("/tasks/webhook", json.dumps({"delivery_id": msg_id, "gen": 0}).encode()) == 200
    assert len(target.hits) == 1
    deliveries = tenant.get("/v1/webhooks/deliveries").json()["deliveries"]
    assert [d["id"] for d in deliveries] == [msg_id] and len(deliveries[0]["attempts"]) == 1


def test_rotation_sends_both_signatures_for_a_day(tenant, target: Target):
    old = _secret(tenant)
    rotated = tenant.post("/v1/account/webhook-secret/rotate").json()
    assert rotated["secret"] != old and rotated["secret"].startswith("whsec_")
    assert rotated["previous_valid_until"]
    assert tenant.get("/v1/account/webhook-secret").json()["secret"] == rotated["secret"]
    tenant.post("/v1/generations", {"prompt": "x", "webhook_url": target.url})
    [hit] = target.wait_for(1)
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    assert _verified(old, hit) == _verified(rotated["secret"], hit)


def test_a_delivery_that_never_succeeds_is_recorded_failed_and_can_be_redelivered(tenant):
    answer = {"status": 503}
    target = Target(lambda hit: Reply(answer["status"]))
    try:
        tenant.post("/v1/generations", {"prompt": "x", "webhook_url": target.url})
        # The test queue allows 6 attempts (task_retry_limit 5); then the delivery is failed.
        failed = _deliveries(tenant, lambda d: d and d[0]["status"] == "failed")
        assert len(failed[0]["attempts"]) == 6 and len(target.hits) == 6
        assert (
            tenant.get("/v1/webhooks/deliveries?status=failed").json()["deliveries"][0]["id"]
            == failed[0]["id"]
        )
        answer["status"] = 204
        again = tenant.post(f"/v1/webhooks/deliveries/{failed[0]['id']}/redeliver")
        assert again.status_code == 202 and again.json()["status"] == "pending"
        delivered = _deliveries(tenant, lambda d: d[0]["status"] == "delivered")
        assert [a["status_code"] for a in delivered[0]["attempts"]][-1] == 204
        assert {h.headers["webhook-id"] for h in target.hits} == {failed[0]["id"]}
        assert tenant.post(f"/v1/webhooks/deliveries/{failed[0]['id']}/redeliver").status_code == 202
        target.wait_for(8)
    finally:
        target.close()


def test_batches_send_completed_and_only_the_item_events_they_ask_for(tenant, target: Target):
    secret = _secret(tenant)
    items = [{"reference": f"r{i}", "prompt": "x"} for i in range(3)]
    with_items = {
        "items": items,
        "webhook_url": target.url + "/a",
        "webhook_events": ["generation.succeeded"],
    }
    first = tenant.post("/v1/batches", with_items).json()
    target.wait_for(4)
    plain = tenant.post("/v1/batches", {"items": items, "webhook_url": target.url + "/b"}).json()
    hits = target.wait_for(5)
    events = [(_verified(secret, h), h.path) for h in hits]
    completed = [e for e, _ in events if e["type"] == "batch.completed"]
    assert sorted(e["data"]["id"] for e in completed) == sorted([first["id"], plain["id"]])
    assert all(e["data"]["counts"]["succeeded"] == 3 for e in completed)
    assert completed[0]["data"]["links"]["results"].endswith("/results.jsonl")
    item_events = [(e, path) for e, path in events if e["type"] == "generation.succeeded"]
    assert len(item_events) == 3 and {path for _, path in item_events} == {"/a"}


@pytest.mark.parametrize(
    "url",
    ["https://10.0.0.5/hook", "http://169.254.169.254/computeMetadata/v1/", "https://192.168.1.20/x",
     "https://metadata.google.internal/", "http://[::ffff:10.0.0.1]/x", "https://user:pw@127.0.0.1/x"],
)  # fmt: skip
def test_private_webhook_urls_are_refused_at_submission(new_tenant, services: Services, url: str):
    tenant = new_tenant()
    single = tenant.post("/v1/generations", {"prompt": "x", "webhook_url": url})
    assert single.status_code == 400 and single.json()["error"]["details"]["field"] == "webhook_url"
    batch = tenant.post("/v1/batches", {"items": [{"reference": "a", "prompt": "x"}], "webhook_url": url})
    assert batch.status_code == 400 and batch.json()["error"]["details"]["field"] == "webhook_url"
    db = services.firestore.db
    assert not list(
        db.collection("jobs").where(filter=FieldFilter("tenant_id", "==", tenant.tenant_id)).limit(1).stream()
    )
    assert not list(
        db.collection("batches")
        .where(filter=FieldFilter("tenant_id", "==", tenant.tenant_id))
        .limit(1)
        .stream()
    )


def test_item_events_need_a_webhook_url(tenant):
    response = tenant.post("/v1/batches", {"items": [{"reference": "a", "prompt": "x"}],
                                           "webhook_events": ["generation.failed"]})  # fmt: skip
    assert response.status_code == 400


def test_a_canceled_batch_sends_batch_canceled_once(
    tenant, target: Target, tasks_client, generation_queue: str
):
    secret = _secret(tenant)
    tasks_client.pause_queue(name=generation_queue)  # nothing runs: every item is canceled
    try:
        items = [{"reference": f"r{i}", "prompt": "x"} for i in range(4)]
        batch = tenant.post("/v1/batches", {"items": items, "webhook_url": target.url}).json()
        assert tenant.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200
        [hit] = target.wait_for(1)
    finally:
        tasks_client.resume_queue(name=generation_queue)
    event = _verified(secret, hit)
    assert event["type"] == "batch.canceled" and event["data"]["status"] == "canceled"
    assert event["data"]["counts"]["canceled"] == 4
    # Polls settle too; the completion is recorded once, so no second event appears.
    assert tenant.get(f"/v1/batches/{batch['id']}").json()["status"] == "canceled"
    deliveries = _deliveries(tenant, lambda d: d and d[0]["status"] == "delivered")
    assert [d["type"] for d in deliveries] == ["batch.canceled"]


def test_items_canceled_with_their_batch_send_their_events_once(
    tenant, target: Target, tasks_client, generation_queue: str, call_worker, services: Services
):
    secret = _secret(tenant)
    tasks_client.pause_queue(name=generation_queue)
    try:
        items = [{"reference": f"r{i}", "prompt": "x"} for i in range(3)]
        body = {"items": items, "webhook_url": target.url, "webhook_events": ["generation.canceled"]}
        batch = tenant.post("/v1/batches", body).json()
        assert tenant.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200
        hits = target.wait_for(4)
    finally:
        tasks_client.resume_queue(name=generation_queue)
    events = [_verified(secret, h) for h in hits]
    assert sorted(e["type"] for e in events) == ["batch.canceled"] + ["generation.canceled"] * 3
    assert len({e["data"]["id"] for e in events if e["type"] == "generation.canceled"}) == 3
    # As if the task died before clearing its flag and the repair sweep ran it again: nothing new.
    batch_ref = services.firestore.db.collection("batches").document(batch["id"])
    assert batch_ref.get().get("item_events_pending") is False
    batch_ref.update({"item_events_pending": True})
    again = json.dumps({"batch_id": batch["id"], "completion": 1, "start": 0}).encode()
    assert call_worker("/tasks/batch-item-events", again) == 200
    assert batch_ref.get().get("item_events_pending") is False
    assert len(_deliveries(tenant, lambda d: len(d) == 4)) == 4
    assert len(target.hits) == 4


def _batch_done(tenant, batch_id: str, finishes: int) -> dict[str, Any]:
    """Once the batch has finished `finishes` times (a retry reopens it), the batch."""

    def finished(deliveries: list[dict]) -> bool:
        done = [d for d in deliveries if d["type"] == "batch.completed" and d["subject"] == batch_id]
        return len(done) >= finishes

    _deliveries(tenant, finished)
    return tenant.get(f"/v1/batches/{batch_id}").json()


def test_an_item_that_fails_again_after_a_retry_sends_a_second_event(tenant, target: Target):
    # Item events used occurrence 0 whatever the retry cycle: the second failure's event collided
    # with the first (AlreadyExists), the worker answered 500 forever and the batch never settled.
    secret = _secret(tenant)
    batch = tenant.post("/v1/batches", {
        "items": [{"reference": "r0", "prompt": "x [[fault=invalid]]"}],
        "webhook_url": target.url + "/hook", "webhook_events": ["generation.failed"],
    }).json()  # fmt: skip
    _batch_done(tenant, batch["id"], 1)
    retried = tenant.post(f"/v1/batches/{batch['id']}/retry", {"include_permanent": True}).json()
    assert retried == {"retried": 1, "retrying": 0}
    finished = _batch_done(tenant, batch["id"], 2)
    assert finished["status"] == "completed" and finished["counts"]["failed"] == 1
    hits = target.wait_for(4)
    events = [_verified(secret, h) for h in hits]
    failed = [e for e in events if e["type"] == "generation.failed"]
    assert len(failed) == 2 and failed[0]["id"] != failed[1]["id"]
    assert {e["data"]["status"] for e in failed} == {"failed"}
    assert len([e for e in events if e["type"] == "batch.completed"]) == 2
    assert tenant.get("/v1/account").json()["balance"] == 100_000  # charged twice, refunded twice
