"""Every bad request gets its exact status and error code, and nothing is written or enqueued."""

from __future__ import annotations

import base64
import io

import pytest
import requests
from google.cloud.firestore import FieldFilter
from PIL import Image

from lote.services import Services
from lote.tenants import store as tenant_store

PNG = io.BytesIO()
Image.new("RGB", (8, 8)).save(PNG, format="PNG")
GOOD = "data:image/png;base64," + base64.b64encode(PNG.getvalue()).decode()
NOT_IMAGE = "data:image/png;base64," + base64.b64encode(b"definitely not a png").decode()
HUGE = "data:image/png;base64," + base64.b64encode(b"\0" * (10 * 1024 * 1024 + 10)).decode()

CASES = [
    # (name, body, expected status, expected error code, field that must be named)
    ("empty object", {}, 400, "invalid_request", "body"),
    ("both prompt and preset", {"prompt": "x", "preset": "declutter", "images": [GOOD]}, 400, "invalid_request", "body"),
    ("prompt too long", {"prompt": "x" * 4001}, 400, "invalid_request", "prompt"),
    ("empty prompt", {"prompt": ""}, 400, "invalid_request", "prompt"),
    ("unknown field", {"prompt": "x", "colour": "red"}, 400, "invalid_request", "colour"),
    ("five images", {"prompt": "x", "images": [GOOD] * 5}, 400, "invalid_request", "images"),
    ("ftp image", {"prompt": "x", "images": ["ftp://example.com/a.png"]}, 400, "invalid_request", "images.0"),
    ("http image", {"prompt": "x", "images": ["http://example.com/a.png"]}, 400, "invalid_request", "images.0"),
    ("not an image", {"prompt": "x", "images": [GOOD, NOT_IMAGE]}, 400, "invalid_request", "images.1"),
    ("data uri over 10 MB", {"prompt": "x", "images": [HUGE]}, 400, "invalid_request", "images.0"),
    ("data uri without base64", {"prompt": "x", "images": ["data:image/png,abc"]}, 400, "invalid_request", "images.0"),
    ("gs in another bucket", {"prompt": "x", "images": ["gs://elsewhere/uploads/a.png"]}, 400, "invalid_request",
     "images.0"),
    ("unknown preset", {"preset": "nope", "images": [GOOD]}, 400, "invalid_request", "preset"),
    ("bad preset choice", {"preset": "virtual-staging", "params": {"style": "gothic"}, "images": [GOOD]}, 400,
     "invalid_request", "params.style"),
    ("unknown preset param", {"preset": "declutter", "params": {"mood": "calm"}, "images": [GOOD]}, 400,
     "invalid_request", "params.mood"),
    ("preset without its image", {"preset": "virtual-staging"}, 400, "invalid_request", "images"),
    ("params without preset", {"prompt": "x", "params": {"a": "b"}}, 400, "invalid_request", "body"),
    ("bad aspect ratio", {"prompt": "x", "aspect_ratio": "7:3"}, 400, "invalid_request", "aspect_ratio"),
    ("bad output format", {"prompt": "x", "output_format": "gif"}, 400, "invalid_request", "output_format"),
    ("bad model", {"prompt": "x", "model": "Bad Model!"}, 400, "invalid_request", "model"),
    ("17 metadata pairs", {"prompt": "x", "metadata": {str(i): "v" for i in range(17)}}, 400, "invalid_request",
     "metadata"),
    ("non-string metadata", {"prompt": "x", "metadata": {"a": 1}}, 400, "invalid_request", "metadata.a"),
    ("ftp webhook", {"prompt": "x", "webhook_url": "ftp://example.com/h"}, 400, "invalid_request", "webhook_url"),
    ("array body", ["x"], 400, "invalid_request", "body"),
]  # fmt: skip


def _fields(body: dict) -> set[str]:
    details = body["error"]["details"]
    if "errors" in details:
        return {item["field"] for item in details["errors"]}
    return {details.get("field", "")}


def _nothing_written(services: Services, tenant_id: str) -> None:
    jobs = (
        services.firestore.db.collection("jobs").where(filter=FieldFilter("tenant_id", "==", tenant_id)).get()
    )
    assert jobs == []
    uploads = list(
        services.storage.client.list_blobs(services.settings.input_bucket, prefix=f"uploads/{tenant_id}/")
    )
    assert uploads == []


@pytest.mark.parametrize(("name", "body", "status", "code", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_bodies(tenant, services: Services, name, body, status, code, field):
    response = tenant.post("/v1/generations", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert field in _fields(response.json()), error
    _nothing_written(services, tenant.tenant_id)


def test_gs_inputs_must_be_the_tenants_own_and_exist(new_tenant, services: Services):
    owner, other = new_tenant("owner"), new_tenant("other")
    bucket = services.settings.input_bucket
    services.storage.put_once(bucket, f"uploads/{owner.tenant_id}/room.png", PNG.getvalue(), "image/png")
    theirs = other.post(
        "/v1/generations", {"prompt": "x", "images": [f"gs://{bucket}/uploads/{owner.tenant_id}/room.png"]}
    )
    missing = owner.post(
        "/v1/generations", {"prompt": "x", "images": [f"gs://{bucket}/uploads/{owner.tenant_id}/no.png"]}
    )
    assert theirs.status_code == missing.status_code == 400
    _nothing_written(services, other.tenant_id)
    mine = owner.post(
        "/v1/generations", {"prompt": "x", "images": [f"gs://{bucket}/uploads/{owner.tenant_id}/room.png"]}
    )
    assert mine.status_code == 202
    assert owner.wait(mine.json()["id"])["status"] == "succeeded"


def test_transport_level_errors(tenant, services: Services):
    url = tenant.base + "/v1/generations"
    cases = [
        (tenant.http.post(url, data="prompt=x", headers={"Content-Type": "application/x-www-form-urlencoded"}),
         415, "unsupported_media_type"),
        (tenant.http.post(url, data="{not json", headers={"Content-Type": "application/json"}), 400, "invalid_request"),
        (tenant.http.post(url, data=b"x" * (33 * 1024 * 1024), headers={"Content-Type": "application/json"}),
         413, "payload_too_large"),
        (tenant.http.delete(url), 405, "method_not_allowed"),
        (tenant.http.get(tenant.base + "/v1/nothing"), 404, "not_found"),
        (tenant.http.get(url + "/gen_doesnotexist"), 404, "not_found"),
        (tenant.http.post(url + "/gen_doesnotexist/cancel"), 404, "not_found"),
        (tenant.http.post(url, json={"prompt": "x"}, headers={"Idempotency-Key": "k" * 256}), 400, "invalid_request"),
    ]  # fmt: skip
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    _nothing_written(services, tenant.tenant_id)


def test_authentication(tenant, services: Services):
    url = tenant.base + "/v1/generations"
    missing = requests.post(url, json={"prompt": "x"}, timeout=10)
    unknown = requests.post(
        url, json={"prompt": "x"}, headers={"Authorization": "Bearer lote_sk_nope"}, timeout=10
    )
    tenant_store.revoke_key(services.firestore.db, tenant.api_key)
    revoked = tenant.post("/v1/generations", {"prompt": "x"})
    for response in (missing, unknown, revoked):
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    _nothing_written(services, tenant.tenant_id)


def test_malformed_ids_are_not_found_without_a_lookup(tenant):
    for job_id in ("a" * 1600, "gen_../../x", "__name__"):
        response = tenant.get(f"/v1/generations/{job_id}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
