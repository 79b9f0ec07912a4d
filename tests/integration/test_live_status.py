"""Live status without polling storms: `Prefer: wait=N` holds GET and POST /v1/generations until
the job changes (or is final) or N seconds pass; ETag/304 polling stays for everyone else."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

from google.cloud.firestore import DocumentReference

from lote.clients import firestore
from lote.services import Services
from tests.integration.conftest import ADMIN_TOKEN, Tenant


def test_a_post_that_waits_answers_with_the_finished_image(tenant: Tenant):
    started = time.monotonic()
    answer = tenant.post("/v1/generations", {"prompt": "a chair"}, headers={"Prefer": "wait=30"})
    now = tenant.get(f"/v1/generations/{answer.json()['id']}").text if answer.status_code == 202 else ""
    assert answer.status_code == 200, f"after {time.monotonic() - started:.1f}s: {answer.text}; now {now}"
    assert answer.headers["Preference-Applied"] == "wait=30"
    body = answer.json()
    assert body["status"] == "succeeded" and body["output"]["url"]
    assert time.monotonic() - started < 30


def test_a_post_whose_job_outlasts_the_wait_is_accepted_as_usual(tenant: Tenant):
    answer = tenant.post("/v1/generations", {"prompt": "slow [[latency=2500]]"}, headers={"Prefer": "wait=1"})
    assert answer.status_code == 202 and answer.headers["Preference-Applied"] == "wait=1"
    assert answer.json()["status"] == "queued" and answer.headers["Location"]
    tenant.wait(answer.json()["id"])


def test_a_get_that_waits_returns_at_the_next_change_not_at_the_deadline(tenant: Tenant):
    job = tenant.post("/v1/generations", {"prompt": "slow [[latency=1500]]"}).json()
    first = tenant.get(f"/v1/generations/{job['id']}")
    etag, seen = first.headers["ETag"], first.json()["status"]
    started = time.monotonic()
    changed = tenant.get(f"/v1/generations/{job['id']}", headers={"If-None-Match": etag, "Prefer": "wait=20"})
    waited = time.monotonic() - started
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.headers["Preference-Applied"] == "wait=20"
    assert (
        changed.json()["status"] != seen
        or changed.json()["waiting_on_model"] != first.json()["waiting_on_model"]
    )
    assert waited < 20  # it came back when the job changed
    final = tenant.wait(job["id"])
    # A final job answers at once, waiting or not; its ETag still gives a 304.
    started = time.monotonic()
    again = tenant.get(f"/v1/generations/{job['id']}", headers={"Prefer": "wait=20"})
    assert again.status_code == 200 and again.json()["status"] == final["status"]
    assert time.monotonic() - started < 5
    cached = tenant.get(f"/v1/generations/{job['id']}", headers={"If-None-Match": again.headers["ETag"]})
    assert cached.status_code == 304


def test_a_wait_that_sees_no_change_ends_at_its_deadline_with_the_same_etag(tenant: Tenant):
    job = tenant.post("/v1/generations", {"prompt": "slower [[latency=2500]]"}).json()
    running = tenant.wait(job["id"], statuses={"running"})
    etag = tenant.get(f"/v1/generations/{job['id']}").headers["ETag"]
    started = time.monotonic()
    answer = tenant.get(f"/v1/generations/{job['id']}", headers={"If-None-Match": etag, "Prefer": "wait=1"})
    assert 0.9 <= time.monotonic() - started < 4 and running["status"] == "running"
    assert answer.status_code == 304 and answer.headers["Preference-Applied"] == "wait=1"
    tenant.wait(job["id"])


def test_unreadable_preferences_are_ignored(tenant: Tenant):
    job = tenant.post("/v1/generations", {"prompt": "x"}, headers={"Prefer": "wait=soon, respond-async"})
    assert job.status_code == 202 and "Preference-Applied" not in job.headers
    tenant.wait(job.json()["id"])


class _StalledListen(DocumentReference):
    """A document whose listen stream connects and then says nothing: what a stalled stream
    looks like to the client (no error, no snapshot)."""

    def on_snapshot(self, callback: Any) -> Any:
        return SimpleNamespace(unsubscribe=lambda: None)


def test_a_wait_whose_listen_stream_stalls_still_sees_the_change(services: Services):
    real = services.firestore.db.collection("wait_probe").document(uuid.uuid4().hex)
    real.set({"status": "running"})
    stalled = _StalledListen(*real._path, client=real._client)
    timer = threading.Timer(0.3, lambda: real.set({"status": "succeeded"}))
    timer.start()
    started = time.monotonic()
    found = firestore.wait_for(stalled, lambda s: (s.to_dict() or {}).get("status") == "succeeded", 20, 0.2)
    timer.join()
    assert found is not None and found.to_dict() == {"status": "succeeded"}
    assert time.monotonic() - started < 5  # a recheck found it, long before the deadline
    assert firestore.wait_for(stalled, lambda s: False, 0.5, 0.2) is None
    real.delete()


def test_a_single_generation_has_an_eta_from_the_attempts_measured_lately(tenant: Tenant):
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    jobs = [tenant.post("/v1/generations", {"prompt": f"eta {i} [[latency=2000]]"}).json() for i in range(3)]
    ends = [dt.datetime.fromisoformat(tenant.wait(job["id"])["finished_at"]) for job in jobs]

    def scheduler() -> dict[str, Any]:
        return dict(tenant.get("/v1/admin/scheduler", headers=admin).json()["pools"][0])

    # Await a tick that read those calls: the singles restarted the ticks (their measures were stale).
    deadline = time.monotonic() + 20
    while not (
        (pool := scheduler())["updated_at"] and dt.datetime.fromisoformat(pool["updated_at"]) > max(ends)
    ):
        assert time.monotonic() < deadline, (pool, max(ends))
        time.sleep(0.1)
    # Three 2 s attempts, smoothed half and half with whatever was measured before: at least 1 s.
    typical = dt.timedelta(milliseconds=pool["attempt_ms"])
    assert dt.timedelta(seconds=1) <= typical < dt.timedelta(seconds=10), pool
    job = tenant.post("/v1/generations", {"prompt": "eta [[latency=2000]]"}).json()
    running = tenant.wait(job["id"], statuses={"running"})
    asked = dt.datetime.now(dt.UTC)
    assert running.get("eta"), running
    eta, started = dt.datetime.fromisoformat(running["eta"]), dt.datetime.fromisoformat(running["started_at"])
    assert asked < eta and abs(eta - (started + typical)) < dt.timedelta(seconds=1.5)
    final = tenant.wait(job["id"])
    assert final["status"] == "succeeded" and "eta" not in final  # nulls are left out
