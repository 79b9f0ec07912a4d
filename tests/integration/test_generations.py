"""One image end to end through the real api and worker functions on the local stack."""

from __future__ import annotations

import base64
import hashlib
import io
import time

import pytest
import requests
from google.cloud.firestore import FieldFilter
from PIL import Image

from lote.jobs import store
from lote.services import Services
from lote_local.stack import Stack

TINY_PNG = io.BytesIO()
Image.new("RGB", (40, 30), (200, 30, 30)).save(TINY_PNG, format="PNG")
DATA_URI = "data:image/png;base64," + base64.b64encode(TINY_PNG.getvalue()).decode()


def test_submit_poll_and_download_a_real_image(tenant):
    response = tenant.post("/v1/generations", {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9"})
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "queued" and accepted["id"].startswith("gen_")
    assert response.headers["Location"] == accepted["links"]["self"]
    job = tenant.wait(accepted["id"])
    assert job["status"] == "succeeded" and job["attempts"] == 1
    assert job["started_at"] and job["finished_at"] and job["model_ms"] >= 0
    output = job["output"]
    data = requests.get(output["url"], timeout=10).content
    assert hashlib.sha256(data).hexdigest() == output["sha256"] and len(data) == output["bytes"]
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("PNG", (output["width"], output["height"]))
    assert image.width > image.height
    redirect = tenant.get(f"/v1/generations/{accepted['id']}/output")
    assert (
        redirect.status_code == 302 and requests.get(redirect.headers["Location"], timeout=10).content == data
    )


def test_the_final_image_is_delivered_never_a_thought_draft(tenant):
    # With thinking output the answer starts with a thought and a draft image marked `thought`;
    # lote used to take the first image part it saw. The offline model draws the same prompt the
    # same way, so the final image is the one a plain answer carries.
    prompt = f"a red barn in snow {time.time_ns()}"
    thinking = tenant.post("/v1/generations", {"prompt": f"{prompt} [[thoughts=1]]"}).json()
    plain = tenant.post("/v1/generations", {"prompt": prompt}).json()
    outputs = [tenant.wait(job["id"])["output"] for job in (thinking, plain)]
    assert outputs[0]["sha256"] == outputs[1]["sha256"]


def test_preset_with_a_data_uri_input_and_jpeg_output(tenant, services: Services):
    body = {"preset": "virtual-staging", "params": {"style": "coastal"}, "images": [DATA_URI],
            "output_format": "jpeg", "metadata": {"property": "AB-12"}}  # fmt: skip
    job_id = tenant.post("/v1/generations", body).json()["id"]
    job = tenant.wait(job_id)
    assert job["status"] == "succeeded" and job["metadata"] == {"property": "AB-12"}
    assert job["output"]["mime_type"] == "image/jpeg"
    doc = store.ref(services.firestore.db, job_id).get().to_dict()
    assert "coastal" in doc["prompt"] and doc["inputs"][0].startswith(
        f"gs://{services.settings.input_bucket}/"
    )
    # The resource echoes the request as it was understood (the data: input as its stored copy).
    # `room_type` was left to the analysis (auto): the resource says what it saw, in params and prompt.
    assert job["preset"] == "virtual-staging" and job["params"] == {
        "style": "coastal",
        "room_type": "living room",
    }
    assert "{room_type}" in doc["prompt"] and job["images"] == doc["inputs"]
    assert job["prompt"] == doc["prompt"].replace("{room_type}", "living room")
    assert job["output_format"] == "jpeg" and "aspect_ratio" not in job and job["model"]
    # No aspect ratio asked: the output keeps the input's 4:3.
    assert job["output"]["width"] * 3 == pytest.approx(job["output"]["height"] * 4, abs=3)


def test_polling_hints_etag_and_304(tenant):
    job_id = tenant.post("/v1/generations", {"prompt": "slow [[latency=800]]"}).json()["id"]
    first = tenant.get(f"/v1/generations/{job_id}")
    assert first.headers["Retry-After"] == "2"  # young jobs are polled often
    same = tenant.get(f"/v1/generations/{job_id}", headers={"If-None-Match": first.headers["ETag"]})
    body = tenant.wait(job_id)
    if same.status_code == 200:  # the job changed between the two reads: the ETag must differ
        assert same.headers["ETag"] != first.headers["ETag"]
    else:
        assert same.status_code == 304 and same.content == b""
    final = tenant.get(f"/v1/generations/{job_id}")
    assert "Retry-After" not in final.headers and final.headers["ETag"] != first.headers["ETag"]
    unchanged = tenant.get(f"/v1/generations/{job_id}", headers={"If-None-Match": final.headers["ETag"]})
    assert unchanged.status_code == 304 and body["status"] == "succeeded"


def test_permanent_model_failures_fail_at_once(tenant):
    cases = {"safety": "safety_blocked", "invalid": "model_invalid_argument"}
    ids = {
        fault: tenant.post("/v1/generations", {"prompt": f"x [[fault={fault}]]"}).json()["id"]
        for fault in cases
    }
    for fault, code in cases.items():
        job = tenant.wait(ids[fault])
        assert job["status"] == "failed" and job["attempts"] == 1, job
        assert job["error"]["code"] == code and job["error"]["retryable"] is False
        assert "output" not in job


def test_transient_failures_are_retried_until_success(tenant):
    faults = ["500", "503", "malformed", "timeout hang=5", "429 delay=1"]
    ids = {}
    for fault in faults:
        prompt = f"flaky {fault} {time.time_ns()} [[fault={fault} times=1]]"
        ids[fault] = tenant.post("/v1/generations", {"prompt": prompt}).json()["id"]
    for fault in faults:
        job = tenant.wait(ids[fault], timeout=40)
        # A quota error is no failed attempt: the job is held again and released by the dispatcher.
        expected = 1 if fault.startswith("429") else 2
        assert job["status"] == "succeeded" and job["attempts"] == expected, (fault, job)


def test_the_last_allowed_attempt_fails_the_job_with_the_last_error(tenant, stack: Stack):
    job = tenant.wait(
        tenant.post("/v1/generations", {"prompt": "down [[fault=503]]"}).json()["id"], timeout=30
    )
    assert job["status"] == "failed" and job["attempts"] == 4  # task_retry_limit 3 in the test queue.yaml
    assert job["error"] == {"code": "model_unavailable", "retryable": True,
                            "message": job["error"]["message"]}  # fmt: skip
    assert "UNAVAILABLE" in job["error"]["message"]


def test_a_task_delivered_twice_makes_one_output_and_one_success(
    tenant, services, tasks_client, generation_queue
):
    job_id = tenant.post("/v1/generations", {"prompt": "twice [[latency=700]]"}).json()["id"]
    tenant.wait(job_id, {"running"})
    tasks_client.run_task(name=f"{generation_queue}/tasks/{job_id}-0")  # a duplicate while running
    job = tenant.wait(job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    late = tasks_client.create_task(  # and a stray duplicate after the end
        parent=generation_queue,
        task={"name": f"{generation_queue}/tasks/{job_id}-late",
              "http_request": {"url": services.settings.worker_url + "/tasks/generate",
                               "body": f'{{"job_id": "{job_id}"}}'.encode(),
                               "headers": {"Content-Type": "application/json"},
                               "oidc_token": {"service_account_email": services.settings.tasks_invoker_email,
                                              "audience": services.settings.worker_url}}},
    )  # fmt: skip
    assert late.name.endswith("-late")
    _wait_task_gone(tasks_client, late.name)
    after = tenant.get(f"/v1/generations/{job_id}").json()
    assert after["attempts"] == 1 and after["output"]["sha256"] == job["output"]["sha256"]
    blobs = list(
        services.storage.client.list_blobs(
            services.settings.output_bucket, prefix=f"outputs/{tenant.tenant_id}/"
        )
    )
    assert [b.name for b in blobs] == [f"outputs/{tenant.tenant_id}/{job_id}.png"]


def _wait_task_gone(client, name: str, timeout: float = 20) -> None:
    from google.api_core import exceptions

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # acknowledgement is visible only as the task's removal
        try:
            client.get_task(name=name)
        except exceptions.NotFound:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name} was not acknowledged")


def test_idempotency_key_replays_and_conflicts(tenant, services: Services):
    body = {"prompt": "same thing"}
    first = tenant.post("/v1/generations", body, headers={"Idempotency-Key": "order-1"})
    again = tenant.post("/v1/generations", body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotency-Replayed" not in first.headers and again.headers["Idempotency-Replayed"] == "true"
    other = tenant.post("/v1/generations", {"prompt": "different"}, headers={"Idempotency-Key": "order-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    jobs = (
        services.firestore.db.collection("jobs")
        .where(filter=FieldFilter("tenant_id", "==", tenant.tenant_id))
        .get()
    )
    assert len(jobs) == 1


def test_tenants_never_see_each_other(new_tenant):
    alice, mallory = new_tenant("alice"), new_tenant("mallory")
    job_id = alice.post("/v1/generations", {"prompt": "private"}).json()["id"]
    alice.wait(job_id)
    for response in (mallory.get(f"/v1/generations/{job_id}"), mallory.get(f"/v1/generations/{job_id}/output"),
                     mallory.post(f"/v1/generations/{job_id}/cancel")):  # fmt: skip
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert alice.get(f"/v1/generations/{job_id}").status_code == 200


def test_cancel_a_queued_job_and_its_task_later_no_ops(tenant, tasks_client, generation_queue, services):
    tasks_client.pause_queue(name=generation_queue)
    try:
        job_id = tenant.post("/v1/generations", {"prompt": "never mind"}).json()["id"]
        canceled = tenant.post(f"/v1/generations/{job_id}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    finally:
        tasks_client.resume_queue(name=generation_queue)
    _wait_task_gone(tasks_client, f"{generation_queue}/tasks/{job_id}-0")
    job = tenant.get(f"/v1/generations/{job_id}").json()
    assert job["status"] == "canceled" and job["attempts"] == 0 and "output" not in job


def test_cancel_a_running_job_ends_canceled_without_output(tenant, services: Services):
    job_id = tenant.post("/v1/generations", {"prompt": "long [[latency=1500]]"}).json()["id"]
    tenant.wait(job_id, {"running"})
    response = tenant.post(f"/v1/generations/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    assert response.json()["status"] == "running"
    job = tenant.wait(job_id)
    assert job["status"] == "canceled" and "output" not in job
    blob = services.storage.client.bucket(services.settings.output_bucket).blob(
        f"outputs/{tenant.tenant_id}/{job_id}.png"
    )
    assert not blob.exists()


def test_cancel_a_finished_job_is_a_conflict(tenant):
    job_id = tenant.post("/v1/generations", {"prompt": "done"}).json()["id"]
    tenant.wait(job_id)
    response = tenant.post(f"/v1/generations/{job_id}/cancel")
    assert response.status_code == 409 and response.json()["error"]["code"] == "generation_finished"


@pytest.mark.parametrize(("fault", "code"), [("malformed", "model_bad_response"), ("no_image", "no_image")])
def test_unusable_answers_fail_the_job_after_three_in_a_row(tenant, fault: str, code: str):
    # Malformed answers used to be retried to the queue's last attempt (30 minutes with queue.yaml);
    # an answer without an image (Gemini's NO_IMAGE) used to fail the image at once, where a second
    # try usually draws it.
    before = tenant.get("/v1/account").json()["balance"]
    garbled = tenant.post("/v1/generations", {"prompt": f"garbled {time.time_ns()} [[fault={fault}]]"}).json()
    twice = tenant.post(
        "/v1/generations", {"prompt": f"twice {time.time_ns()} [[fault={fault} times=2]]"}
    ).json()
    job = tenant.wait(garbled["id"], timeout=40)
    assert job["status"] == "failed" and job["attempts"] == 3, job
    assert job["error"]["code"] == code and job["error"]["retryable"] is False
    assert "3 such answers in a row" in job["error"]["message"]
    recovered = tenant.wait(twice["id"], timeout=40)
    assert recovered["status"] == "succeeded" and recovered["attempts"] == 3, recovered
    assert tenant.get("/v1/account").json()["balance"] == before - 1  # the failed one refunded
