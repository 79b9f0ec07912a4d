"""Browser-safe access on the local stack: client tokens (scopes, subjects, image cap, expiry,
revocation), the origin rules and CORS. Every scenario ends with its tenants' audit clean."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import requests

from lote.access import store as access_store
from lote.access import tokens
from lote.audit import scan as audit_scan
from lote.services import Services
from lote_local.stack import Stack
from tests.integration.conftest import ADMIN_TOKEN, Tenant

SITE = "https://app.partner.example"


def _mint(tenant: Tenant, subject: str, scopes: list[str], **more: Any) -> dict[str, Any]:
    response = tenant.post("/v1/client-tokens", {"subject": subject, "scopes": scopes, **more})
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return dict(response.json())


def _as(tenant: Tenant, token: str, origin: str | None = None) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    if origin:
        http.headers["Origin"] = origin
    return http


def _code(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def allow_origins(stack: Stack, tenant: Tenant, origins: list[str]) -> None:
    """Set the tenant's allowed origins through the admin route."""
    url = f"{stack.url(stack.config.api_port)}/v1/admin/tenants/{tenant.tenant_id}"
    answer = requests.patch(url, json={"allowed_origins": origins}, timeout=10,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
    assert answer.status_code == 200 and answer.json()["allowed_origins"] == origins, answer.text


@pytest.fixture
def allow(stack: Stack) -> Callable[[Tenant, list[str]], None]:
    return lambda tenant, origins: allow_origins(stack, tenant, origins)


def test_a_token_acts_for_its_subject_only(tenant: Tenant, new_tenant):
    alice = _mint(tenant, "alice", ["generations:create", "generations:read"])
    bob = _mint(tenant, "bob", ["generations:create", "generations:read"])
    as_alice, as_bob = _as(tenant, alice["token"]), _as(tenant, bob["token"])
    job = as_alice.post(tenant.base + "/v1/generations", json={"prompt": "a red chair"}).json()
    assert as_alice.get(f"{tenant.base}/v1/generations/{job['id']}").json()["id"] == job["id"]
    assert _code(as_bob.get(f"{tenant.base}/v1/generations/{job['id']}")) == (404, "not_found")
    assert _code(as_bob.post(f"{tenant.base}/v1/generations/{job['id']}/cancel")) == (404, "not_found")
    # The tenant's own key sees every job; another tenant's token sees none of them.
    assert tenant.wait(job["id"])["status"] == "succeeded"
    other = new_tenant()
    stranger = _as(other, _mint(other, "alice", ["generations:read"])["token"])
    assert _code(stranger.get(f"{tenant.base}/v1/generations/{job['id']}")) == (404, "not_found")


def test_the_same_idempotency_key_of_two_subjects_makes_two_jobs(tenant: Tenant):
    scopes = ["generations:create"]
    a, b = (_as(tenant, _mint(tenant, s, scopes)["token"]) for s in ("a", "b"))
    headers = {"Idempotency-Key": "checkout-1"}
    first = a.post(tenant.base + "/v1/generations", json={"prompt": "x"}, headers=headers).json()
    second = b.post(tenant.base + "/v1/generations", json={"prompt": "x"}, headers=headers).json()
    assert first["id"] != second["id"]
    for job in (first, second):
        tenant.wait(job["id"])


def test_scopes_and_what_only_a_key_may_do(tenant: Tenant):
    reader = _as(tenant, _mint(tenant, "u1", ["generations:read"])["token"])
    assert _code(reader.post(tenant.base + "/v1/generations", json={"prompt": "x"})) == (
        403,
        "insufficient_scope",
    )
    assert _code(reader.get(tenant.base + "/v1/batches")) == (403, "insufficient_scope")
    assert reader.get(tenant.base + "/v1/presets").status_code == 200  # any token
    minted = reader.post(
        tenant.base + "/v1/client-tokens", json={"subject": "u2", "scopes": ["generations:read"]}
    )
    assert _code(minted) == (403, "api_key_required")
    assert _code(reader.get(tenant.base + "/v1/account/webhook-secret")) == (403, "api_key_required")
    bad = tenant.post("/v1/client-tokens", {"subject": "u1", "scopes": ["everything"], "ttl_s": 7200})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] in ("scopes.0", "ttl_s")


def test_the_image_cap_is_charged_with_the_submission(tenant: Tenant, services: Services):
    minted = _mint(tenant, "u", ["generations:create", "batches:create"], max_images=3)
    capped = _as(tenant, minted["token"])
    items = [{"reference": f"r{i}", "prompt": f"p {i}"} for i in range(2)]
    batch = capped.post(tenant.base + "/v1/batches", json={"items": items})
    assert batch.status_code == 202, batch.text
    assert capped.post(tenant.base + "/v1/generations", json={"prompt": "third"}).status_code == 202
    over = capped.post(tenant.base + "/v1/generations", json={"prompt": "fourth"})
    assert _code(over) == (403, "token_image_cap_reached")
    assert over.json()["error"]["details"] == {"max_images": 3, "images": 3, "requested": 1}
    balance = tenant.get("/v1/account").json()["balance"]
    assert capped.post(tenant.base + "/v1/generations", json={"prompt": "fifth"}).status_code == 403
    assert tenant.get("/v1/account").json()["balance"] == balance  # nothing charged for a refusal
    # The audit counts the token's images from its jobs and batches: a count that drifted is caught.
    record = access_store.ref(services.firestore.db, minted["id"])
    record.update({"images": 2})
    try:
        report = audit_scan.audit(services, tenant.tenant_id)
    finally:
        record.update({"images": 3})
    found = [(v.invariant, v.detail) for v in report.violations if v.subject == minted["id"]]
    assert found == [("token_images_are_counted", {"images": 2, "submitted": 3, "max_images": 3})]


def test_expired_forged_foreign_and_revoked_tokens_are_named_401s(stack: Stack, tenant: Tenant):
    minted = _mint(tenant, "u", ["generations:read"])
    keys = {"local-1": stack.client_token_key}
    api = stack.url(stack.config.api_port)
    claims = tokens.verify(keys, minted["token"], api, dt.datetime.now(dt.UTC))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    expired = tokens.sign(keys, dataclasses.replace(claims, expires_at=past), api, past)
    forged = tokens.sign({"local-1": "f" * 40}, claims, api, dt.datetime.now(dt.UTC))
    foreign = tokens.sign(keys, claims, "https://api.elsewhere.example", dt.datetime.now(dt.UTC))
    for token, code in (
        (expired, "token_expired"),
        (forged, "token_invalid"),
        (foreign, "token_wrong_audience"),
    ):
        answer = _as(tenant, token).get(tenant.base + "/v1/presets")
        assert _code(answer) == (401, code) and "invalid_token" in answer.headers["WWW-Authenticate"]
    good = _as(tenant, minted["token"])
    assert good.get(tenant.base + "/v1/presets").status_code == 200
    revoked = tenant.post(f"/v1/client-tokens/{minted['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["subject"] == "u"
    assert _code(good.get(tenant.base + "/v1/presets")) == (401, "token_revoked")


def test_origins_keys_stay_out_of_browsers_and_tokens_work_only_from_allowed_sites(tenant: Tenant, allow):
    token = _mint(tenant, "u", ["generations:read"])["token"]
    from_site = _as(tenant, token, SITE)
    refused = from_site.get(tenant.base + "/v1/presets")
    assert _code(refused) == (403, "origin_not_allowed")
    assert refused.headers["Access-Control-Allow-Origin"] == SITE  # the page can read why
    allow(tenant, [SITE])
    ok = from_site.get(tenant.base + "/v1/presets")
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == SITE
    exposed = {h.strip() for h in ok.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "Retry-After", "RateLimit-Remaining", "Location"} <= exposed
    assert "Access-Control-Allow-Credentials" not in ok.headers
    assert _code(_as(tenant, token, "https://evil.example").get(tenant.base + "/v1/presets")) == (
        403, "origin_not_allowed")  # fmt: skip
    # The API key from any page but the API's own: refused before it is even looked up.
    key_from_site = _as(tenant, tenant.api_key, SITE).get(tenant.base + "/v1/account")
    assert _code(key_from_site) == (403, "secret_key_in_browser")
    assert _as(tenant, tenant.api_key, tenant.base).get(tenant.base + "/v1/account").status_code == 200


def test_every_route_answers_its_preflight(tenant: Tenant):
    for method, path in (("POST", "/v1/generations"), ("GET", "/v1/batches/bat_whatever00"),
                         ("POST", "/v1/client-tokens"), ("GET", "/no/such/route")):  # fmt: skip
        answer = requests.options(tenant.base + path, timeout=10, headers={
            "Origin": SITE, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, prefer"})  # fmt: skip
        assert answer.status_code == 204, (path, answer.status_code)
        assert answer.headers["Access-Control-Allow-Origin"] == SITE
        assert method in answer.headers["Access-Control-Allow-Methods"]
        assert "Prefer" in answer.headers["Access-Control-Allow-Headers"]


def test_each_end_user_has_a_rate_limit_of_their_own(new_tenant):
    tenant = new_tenant(limits={"subject_requests_per_minute": 3})
    first, second = (_as(tenant, _mint(tenant, s, ["generations:read"])["token"]) for s in ("a", "b"))
    answers = [first.get(tenant.base + "/v1/presets").status_code for _ in range(4)]
    assert answers[:3] == [200, 200, 200] and answers[3] == 429
    assert second.get(tenant.base + "/v1/presets").status_code == 200  # another subject's own window
