"""Batches on the local stack: fan-out, live counts, completion once, retry, cancel, manifests."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from typing import Any

import pytest
import requests
from google.cloud.firestore import FieldFilter

from lote.batches import store as batch_store
from lote.services import Services

TERMINAL = {"completed", "canceled"}


def wait_batch(tenant, batch_id: str, until: Any = None, timeout: float = 120) -> dict[str, Any]:
    """Poll the batch (the API's own protocol) until `until(body)` or a terminal status."""
    until = until or (lambda body: body["status"] in TERMINAL)
    deadline = time.monotonic() + timeout
    while True:
        body = tenant.get(f"/v1/batches/{batch_id}").json()
        if until(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} not there after {timeout}s: {body}")
        time.sleep(0.2)


def all_items(tenant, batch_id: str, status: str | None = None) -> list[dict[str, Any]]:
    found, token = [], None
    while True:
        params = {
            "page_size": 500,
            **({"status": status} if status else {}),
            **({"page_token": token} if token else {}),
        }
        page = tenant.get(f"/v1/batches/{batch_id}/items", params=params).json()
        found += page["items"]
        token = page.get("next_page_token")
        if not token:
            return found


def test_a_small_batch_end_to_end(tenant):
    items = [{"reference": f"P-{i}", "prompt": f"house {i}"} for i in range(7)]
    body = {
        "items": items,
        "defaults": {"aspect_ratio": "4:3", "metadata": {"crm": "acme"}},
        "metadata": {"run": "1"},
    }
    response = tenant.post("/v1/batches", body, headers={"Idempotency-Key": "batch-1"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["total"] == 7 and accepted["status"] == "queued" and accepted["id"].startswith("bat_")
    replay = tenant.post("/v1/batches", body, headers={"Idempotency-Key": "batch-1"})
    assert replay.json() == accepted
    batch = wait_batch(tenant, accepted["id"])
    assert batch["status"] == "completed" and batch["progress"] == 100
    assert batch["counts"] == {
        "total": 7,
        "queued": 0,
        "running": 0,
        "succeeded": 7,
        "failed": 0,
        "canceled": 0,
    }
    assert batch["fanout"] == {"chunks_done": 1, "chunks_total": 1, "complete": True}
    assert batch["started_at"] and batch["finished_at"] and batch["metadata"] == {"run": "1"}
    # Over its life: 7 items from creation to finish (a batch done between two looks, whose
    # started_at is its finished_at, used to show 0).
    life_s = dt.datetime.fromisoformat(batch["finished_at"]) - dt.datetime.fromisoformat(batch["created_at"])
    assert batch["throughput_per_min"] == pytest.approx(7 / max(1.0, life_s.total_seconds()) * 60, rel=0.01)
    listed = all_items(tenant, accepted["id"])
    assert [i["reference"] for i in listed] == [f"P-{i}" for i in range(7)]
    lines = [
        json.loads(line)
        for line in tenant.get(f"/v1/batches/{accepted['id']}/results.jsonl").text.splitlines()
    ]
    assert [line["index"] for line in lines] == list(range(7))
    tail = tenant.get(f"/v1/batches/{accepted['id']}/results.jsonl?from_index=5").text.splitlines()
    assert [json.loads(line)["index"] for line in tail] == [5, 6]
    for bad in ("-1", "x", "100001"):
        refused = tenant.get(f"/v1/batches/{accepted['id']}/results.jsonl?from_index={bad}")
        assert refused.status_code == 400 and refused.json()["error"]["details"]["field"] == "from_index"
    image = tenant.get(lines[3]["output"]["url"].removeprefix(tenant.base))
    assert image.status_code == 302
    assert requests.get(image.headers["Location"], timeout=10).content[:4] == b"\x89PNG"
    item = tenant.get(f"/v1/generations/{lines[3]['id']}").json()  # items are generations too
    assert item["metadata"] == {"crm": "acme"} and item["status"] == "succeeded"


def _fault(i: int) -> str:
    kind = i % 10
    if kind == 0:
        return f"item {i} [[fault=safety]]"  # permanent
    if kind == 1:
        return f"item {i} [[fault=503 times=2]]"  # transient, succeeds on the third attempt
    if kind == 2 and i % 20 == 2:
        return f"item {i} [[fault=503 times=6]]"  # outlasts the 4 attempts, succeeds after a retry
    return f"item {i}"


def test_1000_items_with_faults_then_retry(tenant, services: Services):
    items = [{"reference": f"R{i:04d}", "prompt": _fault(i)} for i in range(1000)]
    started = time.monotonic()
    response = tenant.post("/v1/batches", {"items": items})
    assert response.status_code == 202 and time.monotonic() - started < 5
    batch_id = response.json()["id"]
    batch = wait_batch(tenant, batch_id, timeout=300)
    assert batch["status"] == "completed", batch
    listed = all_items(tenant, batch_id)
    tally = Counter(item["status"] for item in listed)
    assert len(listed) == 1000 and set(tally) <= {"succeeded", "failed"}
    assert {k: batch["counts"][k] for k in tally} == dict(tally)
    assert tally["failed"] == 150  # 100 safety + 50 that ran out of attempts
    codes = Counter(item["error"]["code"] for item in listed if item["status"] == "failed")
    assert codes == {"safety_blocked": 100, "model_unavailable": 50}
    doc = batch_store.ref(services.firestore.db, batch_id).get().to_dict()
    assert doc["completions"] == 1 and doc["finished_at"] is not None

    first = tenant.post(f"/v1/batches/{batch_id}/retry", {"error_codes": ["model_unavailable"]})
    second = tenant.post(f"/v1/batches/{batch_id}/retry", {"error_codes": ["model_unavailable"]})
    assert first.status_code == 200 and first.json() == {"retried": 50, "retrying": 0}
    assert second.json() == {"retried": 0, "retrying": 0}  # nothing is queued twice
    batch = wait_batch(tenant, batch_id, until=lambda b: b["status"] == "completed" and b["counts"]["failed"] == 100,
                       timeout=120)  # fmt: skip
    assert batch["counts"]["succeeded"] == 900
    failed = all_items(tenant, batch_id, "failed")
    assert {item["error"]["code"] for item in failed} == {"safety_blocked"}
    assert batch_store.ref(services.firestore.db, batch_id).get().to_dict()["completions"] == 2


def test_cancel_midway(tenant, tasks_client, generation_queue):
    items = [{"reference": f"C{i}", "prompt": f"slow {i} [[latency=400]]"} for i in range(300)]
    batch_id = tenant.post("/v1/batches", {"items": items}).json()["id"]
    wait_batch(tenant, batch_id, until=lambda b: b["counts"]["succeeded"] >= 5)
    tasks_client.pause_queue(name=generation_queue)  # whatever the machine's speed, some are still queued
    try:
        response = tenant.post(f"/v1/batches/{batch_id}/cancel")
    finally:
        tasks_client.resume_queue(name=generation_queue)
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "canceled" and answer["canceled"] > 0
    batch = wait_batch(
        tenant, batch_id, until=lambda b: b["finished_at"] is not None if "finished_at" in b else False
    )
    counts = batch["counts"]
    assert batch["status"] == "canceled"
    assert counts["queued"] == counts["running"] == 0
    assert counts["canceled"] >= answer["canceled"] and counts["succeeded"] + counts["canceled"] == 300
    again = tenant.post(f"/v1/batches/{batch_id}/cancel").json()
    assert again["canceled"] == 0
    assert tenant.post(f"/v1/batches/{batch_id}/retry", {}).json() == {"retried": 0, "retrying": 0}


def test_a_manifest_batch_through_a_signed_upload(tenant):
    upload = tenant.post("/v1/uploads", {"content_type": "application/x-ndjson", "filename": "items.jsonl"})
    assert upload.status_code == 201
    target = upload.json()
    lines = "\n".join(json.dumps({"reference": f"M{i}", "prompt": f"manifest {i}"}) for i in range(30)) + "\n"
    put = requests.put(target["upload_url"], data=lines.encode(), headers=target["headers"], timeout=10)
    assert put.status_code == 200
    response = tenant.post(
        "/v1/batches", {"items_url": target["gs_uri"], "defaults": {"output_format": "webp"}}
    )
    assert response.status_code == 202 and response.json()["total"] == 30
    batch = wait_batch(tenant, response.json()["id"])
    assert batch["counts"]["succeeded"] == 30
    assert {i["output"]["mime_type"] for i in all_items(tenant, response.json()["id"])} == {"image/webp"}


def test_invalid_items_are_listed_and_nothing_is_written(tenant, services: Services):
    items = [{"reference": f"V{i}", "prompt": "ok"} for i in range(300)]
    items[3] = {"reference": "V3"}  # no prompt
    items[7] = {"reference": "V7", "prompt": "x", "aspect_ratio": "2:1"}
    items[9] = {"reference": "V1", "prompt": "dup"}  # repeats item 1
    items[11] = {"reference": "V11", "preset": "virtual-staging"}  # the preset needs an image
    items[12] = "not an object"
    items += [{"reference": f"W{i}", "prompt": "x", "model": "BAD"} for i in range(150)]
    response = tenant.post("/v1/batches", {"items": items})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and error["details"]["invalid_items"] == 155
    listed = error["details"]["errors"]
    assert len(listed) == 100 and error["details"]["truncated"] is True
    by_index = {e["index"]: e for e in listed}
    assert by_index[7]["field"] == "aspect_ratio" and by_index[7]["reference"] == "V7"
    assert by_index[9]["field"] == "reference" and by_index[11]["field"] == "images"
    assert by_index[12]["reference"] is None
    db = services.firestore.db
    assert db.collection("batches").where(filter=FieldFilter("tenant_id", "==", tenant.tenant_id)).get() == []
    assert db.collection("jobs").where(filter=FieldFilter("tenant_id", "==", tenant.tenant_id)).get() == []
    manifests = services.storage.client.list_blobs(
        services.settings.manifest_bucket, prefix=f"batches/{tenant.tenant_id}/"
    )
    assert list(manifests) == []
    too_many = tenant.post(
        "/v1/batches", {"items": [{"reference": str(i), "prompt": "x"} for i in range(10_001)]}
    )
    assert too_many.status_code == 400
    both = tenant.post("/v1/batches", {"items": [{"reference": "a", "prompt": "x"}], "items_url": "gs://x/y"})
    assert both.status_code == 400


def test_other_tenants_get_404_on_every_batch_route(new_tenant):
    owner, other = new_tenant("owner"), new_tenant("other")
    batch_id = owner.post("/v1/batches", {"items": [{"reference": "a", "prompt": "x"}]}).json()["id"]
    wait_batch(owner, batch_id)
    for response in (
        other.get(f"/v1/batches/{batch_id}"), other.get(f"/v1/batches/{batch_id}/items"),
        other.get(f"/v1/batches/{batch_id}/results.jsonl"), other.post(f"/v1/batches/{batch_id}/retry", {}),
        other.post(f"/v1/batches/{batch_id}/cancel"),
    ):  # fmt: skip
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert other.get("/v1/batches").json()["batches"] == []
    assert [b["id"] for b in owner.get("/v1/batches").json()["batches"]] == [batch_id]


def test_listing_is_newest_first_with_pages_and_status(tenant):
    ids = [
        tenant.post("/v1/batches", {"items": [{"reference": "a", "prompt": f"x{i}"}]}).json()["id"]
        for i in range(3)
    ]
    for batch_id in ids:
        wait_batch(tenant, batch_id)
    listed = tenant.get("/v1/batches", params={"status": "completed"}).json()["batches"]
    assert [b["id"] for b in listed] == ids[::-1]
    assert tenant.get("/v1/batches", params={"status": "queued"}).json()["batches"] == []
    assert tenant.get("/v1/batches", params={"status": "bogus"}).status_code == 400


def test_running_a_fanout_chunk_again_changes_nothing(tenant, services: Services, call_worker):
    batch_id = tenant.post(
        "/v1/batches", {"items": [{"reference": str(i), "prompt": f"x{i}"} for i in range(5)]}
    ).json()["id"]
    wait_batch(tenant, batch_id)
    db = services.firestore.db
    before = {s.id: s.update_time for s in batch_store.items(db, batch_id).stream()}
    assert call_worker("/tasks/fanout-chunk", json.dumps({"batch_id": batch_id, "chunk": 0}).encode()) == 200
    after = {s.id: s.update_time for s in batch_store.items(db, batch_id).stream()}
    assert after == before and len(after) == 5
    assert tenant.get(f"/v1/batches/{batch_id}").json()["counts"]["succeeded"] == 5


def test_conflicts_are_named(tenant):
    done = tenant.post("/v1/batches", {"items": [{"reference": "a", "prompt": "x"}]}).json()["id"]
    wait_batch(tenant, done)
    late = tenant.post(f"/v1/batches/{done}/cancel")
    assert late.status_code == 409 and late.json()["error"]["code"] == "batch_completed"
    items = [
        {"reference": "fails", "prompt": "x [[fault=invalid]]"},
        {"reference": "slow", "prompt": "y [[latency=2000]]"},
    ]
    batch_id = tenant.post("/v1/batches", {"items": items}).json()["id"]
    wait_batch(tenant, batch_id, until=lambda b: b["counts"]["failed"] == 1)
    assert tenant.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
    retried = tenant.post(f"/v1/batches/{batch_id}/retry", {"include_permanent": True})
    assert retried.status_code == 409 and retried.json()["error"]["code"] == "batch_canceled"
    wait_batch(tenant, batch_id)
