"""The worker's door (OIDC), its input guard (SSRF), the repair sweep, and the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import json

import requests

from lote import timeutil
from lote.jobs import service as jobs
from lote.jobs import store
from lote.jobs.schemas import GenerationRequest
from lote.services import Services
from lote_local.stack import Stack


def _job_without_task(services: Services, tenant_id: str, **changes) -> str:
    """A committed job whose enqueue never happened (the crash window), backdated past repair_after_s."""
    job_id = jobs.ids.new_id("gen")
    doc = jobs.new_job(services, tenant_id, job_id, GenerationRequest(prompt="repair me"))
    doc.update({"created_at": timeutil.now() - dt.timedelta(minutes=5), **changes})
    store.create(services.firestore.db, job_id, doc, None, (202, {}, {}))
    return job_id


def test_worker_refuses_calls_without_a_valid_token(stack: Stack, tenant, services: Services, call_worker):
    job_id = _job_without_task(services, tenant.tenant_id, created_at=timeutil.now())
    url = stack.url(stack.config.worker_port) + "/tasks/generate"
    body = json.dumps({"job_id": job_id})
    no_token = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    forged = requests.post(url, data=body, timeout=10,
                           headers={"Content-Type": "application/json", "Authorization": "Bearer e30.e30.sig"})  # fmt: skip
    assert (no_token.status_code, forged.status_code) == (401, 401)
    assert call_worker("/tasks/generate", body.encode(), email="intruder@evil.iam.gserviceaccount.com") == 403
    assert call_worker("/tasks/generate", body.encode(), audience="https://somewhere-else.example") == 401
    job = store.ref(services.firestore.db, job_id).get().to_dict()
    assert (job["status"], job["attempts"]) == ("queued", 0)  # nothing was processed
    assert call_worker("/tasks/generate", body.encode()) == 200  # the configured invoker is let in
    assert tenant.wait(job_id)["status"] == "succeeded"


def test_bad_task_bodies_are_400(call_worker):
    assert call_worker("/tasks/generate", b'{"job": 1}') == 400


def test_repair_sweep_enqueues_jobs_left_without_a_task(tenant, services: Services, call_worker):
    orphan = _job_without_task(services, tenant.tenant_id)
    stuck = _job_without_task(services, tenant.tenant_id, status="running", attempts=1, enqueued=True,
                              lease_until=timeutil.now() - dt.timedelta(seconds=5))  # fmt: skip
    fresh = _job_without_task(services, tenant.tenant_id, created_at=timeutil.now())
    assert call_worker("/tasks/sweep") == 200
    assert tenant.wait(orphan)["status"] == "succeeded"
    repaired = tenant.wait(stuck)
    assert repaired["status"] == "succeeded" and repaired["attempts"] == 2
    assert store.ref(services.firestore.db, fresh).get().to_dict()["enqueued"] is False  # too young to touch
    assert call_worker("/tasks/sweep") == 200  # running it again changes nothing
    assert tenant.get(f"/v1/generations/{orphan}").json()["attempts"] == 1


def test_inputs_on_private_addresses_are_refused(tenant):
    # A literal address is refused at submission, and nothing is written.
    urls = ["https://127.0.0.1/a.png", "https://169.254.169.254/computeMetadata/v1/", "https://10.0.0.7/a.png",
            "https://[::1]/a.png", "https://192.168.1.1/a.png", "https://100.64.0.1/a.png"]  # fmt: skip
    for url in urls:
        refused = tenant.post("/v1/generations", {"prompt": "x", "images": [url]})
        assert refused.status_code == 400 and "images" in refused.text, (url, refused.text)
    # A name is resolved when it is fetched, and refused then.
    names = ["https://localhost/a.png", "https://LocalHost:8443/a.png"]
    ids = [tenant.post("/v1/generations", {"prompt": "x", "images": [url]}).json()["id"] for url in names]
    for job_id in ids:
        job = tenant.wait(job_id)
        assert job["status"] == "failed" and job["error"]["code"] == "input_forbidden", job
        assert job["attempts"] == 1
