"""The bad-input table: every malformed request gets a clear error naming what is wrong, and
nothing is written or charged. Several rows are bugs a fuzzer and a first-day partner found."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from google.cloud.firestore import FieldFilter

from lote.services import Services
from tests.integration.conftest import ADMIN_TOKEN

CREDITS = 100_000
NOT_AN_IMAGE = "data:image/png;base64," + base64.b64encode(b"these bytes are not a picture").decode()


@dataclass(frozen=True)
class Case:
    """One bad request and what it must get."""

    method: str
    path: str
    body: Any = None
    status: int = 400
    code: str = "invalid_request"
    names: str = ""  # a string the error's JSON must contain (the field, usually)
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of `body`
    admin: bool = False


def gen(names: str = "", **body: Any) -> Case:
    """POST /v1/generations with a prompt unless the body replaces it."""
    return Case("POST", "/v1/generations", {"prompt": "a chair", **body}, names=names)


def batch(names: str = "", items: Any = None, **body: Any) -> Case:
    """POST /v1/batches with one good item unless given."""
    return Case(
        "POST", "/v1/batches", {"items": items or [{"reference": "r", "prompt": "x"}], **body}, names=names
    )


def item(names: str = "", **fields: Any) -> Case:
    """A batch whose only item has these fields."""
    return batch(names, items=[{"reference": "r", "prompt": "x", **fields}])


CASES = {
    # Map keys that Firestore cannot store (bugs 1 and 2).
    "gen-metadata-empty-key": gen("metadata", metadata={"": "0"}),
    "gen-metadata-reserved-key": gen("metadata", metadata={"__x__": "1"}),
    "gen-metadata-17-pairs": gen("metadata", metadata={f"k{i}": "v" for i in range(17)}),
    "gen-metadata-long-value": gen("metadata", metadata={"k": "v" * 513}),
    "gen-metadata-long-key": gen("metadata", metadata={"k" * 65: "v"}),
    "gen-metadata-number-value": gen("metadata", metadata={"k": 1}),
    "gen-metadata-list": gen("metadata", metadata=["a"]),
    "gen-metadata-dotted-underscore-key": gen("metadata", metadata={"_x": "1"}),
    "batch-metadata-reserved-key": batch("metadata", metadata={"__x__": "1"}),
    "batch-metadata-empty-key": batch("metadata", metadata={"": "1"}),
    "item-metadata-reserved-key": item("metadata", metadata={"__x__": "1"}),
    "item-metadata-empty-key": item("metadata", metadata={"": "0"}),
    "defaults-metadata-reserved-key": batch("metadata", defaults={"metadata": {"__x__": "1"}}),
    "gen-params-reserved-key": Case("POST", "/v1/generations", {"preset": "declutter", "params": {"__x__": "1"},
                                    "images": ["https://example.com/a.png"]}, names="params"),
    # Unknown names are refused, not priced at a default (bug 5).
    "gen-unknown-model": gen("model", model="gemini-9-ultra"),
    "item-unknown-model": item("model", model="gemini-9-ultra"),
    "defaults-unknown-model": batch("model", defaults={"model": "gemini-9-ultra"}),
    "gen-unknown-preset": Case("POST", "/v1/generations", {"preset": "nope"}, names="preset"),
    # Prompt and preset rules.
    "gen-empty-prompt": gen("prompt", prompt=""),
    "gen-blank-prompt": gen("prompt", prompt="   "),
    "gen-long-prompt": gen("prompt", prompt="x" * 4001),
    "gen-prompt-number": gen("prompt", prompt=5),
    "gen-neither-prompt-nor-preset": Case("POST", "/v1/generations", {"aspect_ratio": "1:1"}, names="prompt"),
    "gen-prompt-and-preset": gen("preset", preset="declutter", images=["https://example.com/a.png"]),
    "gen-params-without-preset": gen("params", params={"style": "modern"}),
    "gen-preset-unknown-param": Case("POST", "/v1/generations", {"preset": "declutter", "params": {"colour": "red"},
                                     "images": ["https://example.com/a.png"]}, names="params.colour"),
    "gen-preset-bad-choice": Case("POST", "/v1/generations", {"preset": "declutter", "params": {"room_type": "moon"},
                                  "images": ["https://example.com/a.png"]}, names="params.room_type"),
    "gen-preset-without-images": Case("POST", "/v1/generations", {"preset": "declutter"}, names="images"),
    "gen-lone-surrogate": Case("POST", "/v1/generations", raw=b'{"prompt": "a \\ud800 chair"}', names="body"),
    # Inputs.
    "gen-five-images": gen("images", images=["https://example.com/a.png"] * 5),
    "gen-ftp-image": gen("images", images=["ftp://example.com/a.png"]),
    "gen-private-ip-image": gen("images", images=["https://10.0.0.1/a.png"]),
    "gen-metadata-ip-image": gen("images", images=["https://169.254.169.254/computeMetadata/v1/"]),
    "gen-loopback-image": gen("images", images=["https://127.0.0.1/a.png"]),
    "gen-ipv6-loopback-image": gen("images", images=["https://[::1]/a.png"]),
    "gen-mapped-private-image": gen("images", images=["https://[::ffff:192.168.0.1]/a.png"]),
    "item-private-ip-image": item("images", images=["https://192.168.1.1/a.png"]),
    "gen-bad-base64": gen("images", images=["data:image/png;base64,!!!"]),
    "gen-data-not-an-image": gen("images.0", images=[NOT_AN_IMAGE]),
    "gen-gs-other-bucket": gen("images.0", images=["gs://someone-elses-bucket/uploads/x.png"]),
    "gen-long-image-url": gen("images", images=["https://example.com/" + "a" * 2100]),
    # Enumerations and formats.
    "gen-bad-aspect-ratio": gen("aspect_ratio", aspect_ratio="7:5"),
    "gen-bad-output-format": gen("output_format", output_format="gif"),
    "gen-null-output-format": gen("output_format", output_format=None),
    "gen-ftp-webhook": gen("webhook_url", webhook_url="ftp://example.com/hook"),
    "gen-private-webhook": gen("webhook_url", webhook_url="https://10.0.0.5/hook"),
    "gen-unknown-field": gen("colour", colour="red"),
    # Bodies that are not the JSON object we need.
    "gen-body-list": Case("POST", "/v1/generations", [{"prompt": "x"}], names="body"),
    "gen-body-not-json": Case("POST", "/v1/generations", raw=b"{prompt: x}", names="body"),
    "gen-text-plain": Case("POST", "/v1/generations", raw=b"prompt=x", status=415, code="unsupported_media_type",
                           headers={"Content-Type": "text/plain"}),
    "gen-long-idempotency-key": Case("POST", "/v1/generations", {"prompt": "x"}, names="Idempotency-Key",
                                     headers={"Idempotency-Key": "k" * 300}),
    "gen-control-idempotency-key": Case("POST", "/v1/generations", {"prompt": "x"}, names="Idempotency-Key",
                                        headers={"Idempotency-Key": "a\tb"}),
    # Batches.
    "batch-no-items": Case("POST", "/v1/batches", {"items": []}, names="items"),
    "batch-items-and-url": batch("items_url", items_url="gs://x/y.jsonl"),
    "batch-neither-source": Case("POST", "/v1/batches", {"metadata": {}}, names="items"),
    "batch-duplicate-reference": batch("reference", items=[{"reference": "r", "prompt": "x"}] * 2),
    "batch-item-without-reference": batch("reference", items=[{"prompt": "x"}]),
    "batch-item-long-reference": item("reference", reference="r" * 129),
    "batch-item-webhook": item("webhook_url", webhook_url="https://example.com/h"),
    "batch-item-not-object": batch("items", items=["just a string"]),
    "batch-item-without-prompt": batch("prompt", items=[{"reference": "r"}]),
    "batch-events-without-url": batch("webhook_url", webhook_events=["generation.failed"]),
    "batch-unknown-event": batch("webhook_events", webhook_url="https://example.com/h",
                                 webhook_events=["generation.exploded"]),
    "batch-http-items-url": Case("POST", "/v1/batches", {"items_url": "https://example.com/m.jsonl"}, names="items_url"),
    "batch-foreign-items-url": Case("POST", "/v1/batches", {"items_url": "gs://elsewhere/m.jsonl"}, names="items_url"),
    "batch-defaults-unknown-field": batch("defaults", defaults={"colour": "red"}),
    "batch-too-many-items": batch("items", items=[{"reference": f"r{i}", "prompt": "x"} for i in range(10_001)]),
    # Other routes.
    "ledger-unknown-page-token": Case("GET", "/v1/account/ledger?page_token=zzz", names="page_token"),
    "batches-bad-status": Case("GET", "/v1/batches?status=bogus", names="status"),
    "deliveries-bad-status": Case("GET", "/v1/webhooks/deliveries?status=bogus", names="status"),
    "upload-bad-type": Case("POST", "/v1/uploads", {"content_type": "text/html"}, names="content_type"),
    "upload-bool-size": Case("POST", "/v1/uploads", {"content_type": "image/png", "max_bytes": True}, names="max_bytes"),
    "checkout-unknown-pack": Case("POST", "/v1/billing/checkout", {"pack": "credits_7"}, names="pack"),
    "checkout-pack-number": Case("POST", "/v1/billing/checkout", {"pack": 100}, names="pack"),
    "retry-codes-not-list": Case("POST", "/v1/batches/bat_aaaaaaaaaaaaaaaaaaaa/retry", {"error_codes": "x"},
                                 names="error_codes"),
    "unroutable-path": Case("GET", "/v1/generations/%0A", status=404, code="not_found"),
    "no-such-route": Case("GET", "/v1/nothing-here", status=404, code="not_found"),
    "wrong-method": Case("DELETE", "/v1/generations", status=405, code="method_not_allowed"),
    "no-credentials": Case("POST", "/v1/generations", {"prompt": "x"}, status=401, code="unauthenticated",
                           headers={"Authorization": ""}),
    # Admin routes: strict types, the same header rules.
    "admin-bool-in-flight": Case("PATCH", "/v1/admin/tenants/{tenant}", {"max_in_flight": True}, names="max_in_flight",
                                 admin=True),
    "admin-string-rate": Case("PATCH", "/v1/admin/tenants/{tenant}", {"requests_per_minute": "10"},
                              names="requests_per_minute", admin=True),
    "admin-string-credits": Case("POST", "/v1/admin/tenants/{tenant}/credits", {"credits": "10", "reason": "x"},
                                 names="credits", admin=True),
    "admin-float-credits": Case("POST", "/v1/admin/tenants/{tenant}/credits", {"credits": 1.5, "reason": "x"},
                                names="credits", admin=True),
    "admin-long-idempotency-key": Case("POST", "/v1/admin/tenants/{tenant}/credits", {"credits": 10, "reason": "x"},
                                       names="Idempotency-Key", headers={"Idempotency-Key": "k" * 300}, admin=True),
}  # fmt: skip


def _send(case: Case, tenant: Any) -> requests.Response:
    headers = {**({"Authorization": f"Bearer {ADMIN_TOKEN}"} if case.admin else {}), **case.headers}
    path = case.path.replace("{tenant}", tenant.tenant_id)
    if case.raw is not None:
        headers.setdefault("Content-Type", "application/json")
        return tenant.http.request(case.method, tenant.base + path, data=case.raw, headers=headers)
    if case.body is None:
        return tenant.http.request(case.method, tenant.base + path, headers=headers, allow_redirects=False)
    return tenant.http.request(case.method, tenant.base + path, json=case.body, headers=headers)


def _written(services: Services, tenant_id: str) -> dict[str, int]:
    db = services.firestore.db
    owned = FieldFilter("tenant_id", "==", tenant_id)
    return {
        name: len(list(db.collection(name).where(filter=owned).limit(5).stream()))
        for name in ("jobs", "batches", "idempotency", "webhook_deliveries")
    }


def test_the_table_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_and_writes_nothing(name: str, new_tenant, services: Services):
    case = CASES[name]
    tenant = new_tenant(credits=CREDITS)
    before = services.firestore.db.collection("tenants").document(tenant.tenant_id).get().to_dict()
    response = _send(case, tenant)
    assert response.status_code == case.status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == case.code and error["message"] and "details" in error, error
    text = json.dumps(error)
    assert case.names in text, error
    assert "object at 0x" not in text and "Traceback" not in text  # no Python reprs
    if case.status == 405:
        assert response.headers["Allow"]
    after = services.firestore.db.collection("tenants").document(tenant.tenant_id).get().to_dict()
    assert after == before  # balance, limits and plan untouched
    assert _written(services, tenant.tenant_id) == dict.fromkeys(_written(services, tenant.tenant_id), 0)
