"""Spend controls: a daily cap refuses the charge that would pass it (403, nothing written), tells
the tenant once, binds singles spread over the purse's slices and batches alike; a low balance is
warned of once per crossing; Standard Webhooks signatures on both events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from standardwebhooks.webhooks import Webhook

from lote.billing import ledger
from lote.services import Services
from tests.support import Target


def _verified(tenant, hit) -> dict:
    secret = tenant.get("/v1/account/webhook-secret").json()["secret"]
    return Webhook(secret).verify(hit.body, hit.headers)


def _ledger(services: Services, tenant_id: str) -> list[dict]:
    entries = ledger.tenant_ref(services.firestore.db, tenant_id).collection(ledger.LEDGER).stream()
    return [e.to_dict() for e in entries]


def test_a_daily_cap_binds_singles_and_batches_exactly_and_is_reported_once(
    new_tenant, services: Services, target: Target
):
    tenant = new_tenant(credits=1_000)
    tenant.post("/v1/generations", {"prompt": "before the cap", "reuse": False})  # 1 credit, counted
    controls = tenant.http.patch(
        tenant.base + "/v1/account/spend-controls",
        json={"daily_cap": 10, "webhook_url": target.url + "/account"},
    )
    assert controls.status_code == 200, controls.text
    assert controls.json()["daily_cap"] == 10 and controls.json()["charged_today"] == 1

    # Twenty end users at once against 9 credits of room spread over 16 slices: exactly 9 get in.
    def submit(n: int) -> int:
        return tenant.post("/v1/generations", {"prompt": f"user {n}", "reuse": False}).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(submit, range(20)))
    assert codes.count(202) == 9 and codes.count(403) == 11, codes

    refused = tenant.post("/v1/generations", {"prompt": "one more", "reuse": False})
    error = refused.json()["error"]
    assert refused.status_code == 403 and error["code"] == "spend_cap_reached"
    assert {k: error["details"][k] for k in ("period", "cap", "charged", "required")} == {
        "period": "day", "cap": 10, "charged": 10, "required": 1}  # fmt: skip
    assert error["details"]["resets_at"].endswith("T00:00:00.000Z")
    batch = tenant.post("/v1/batches", {"items": [{"reference": "a", "prompt": "a batch item"}]})
    assert batch.status_code == 403 and batch.json()["error"]["code"] == "spend_cap_reached"
    assert sum(-e["delta"] for e in _ledger(services, tenant.tenant_id) if e["reason"] == "debit") == 10

    [hit] = target.wait_for(1)  # one event for the day, however many refusals
    event = _verified(tenant, hit)
    assert event["type"] == "account.cap_reached" and hit.path == "/account"
    assert {k: event["data"][k] for k in ("tenant_id", "period", "cap")} == {
        "tenant_id": tenant.tenant_id, "period": "day", "cap": 10}  # fmt: skip

    # Raising the cap gives room at once, to a batch as well (room the slices held is gathered).
    raised = tenant.http.patch(tenant.base + "/v1/account/spend-controls", json={"daily_cap": 14})
    assert raised.json()["webhook_url"] == target.url + "/account"  # unchanged: not in the request
    assert tenant.post("/v1/generations", {"prompt": "after", "reuse": False}).status_code == 202
    items = [{"reference": str(n), "prompt": f"item {n}", "reuse": False} for n in range(3)]
    assert tenant.post("/v1/batches", {"items": items}).status_code == 202
    assert tenant.post("/v1/batches", {"items": items[:1]}).status_code == 403
    shown = tenant.get("/v1/account/spend-controls").json()
    assert shown["charged_today"] == 14 and shown["daily_cap"] == 14

    # Dropping the cap takes its room away: admissions go back to the fast path, uncapped.
    tenant.http.patch(tenant.base + "/v1/account/spend-controls", json={"daily_cap": None})
    assert tenant.post("/v1/generations", {"prompt": "uncapped", "reuse": False}).status_code == 202


def test_a_low_balance_is_warned_of_once_per_crossing(new_tenant, target: Target):
    tenant = new_tenant(credits=6)
    set_up = tenant.http.patch(
        tenant.base + "/v1/account/spend-controls",
        json={"low_balance_threshold": 4, "webhook_url": target.url + "/account"},
    )
    assert set_up.status_code == 200 and set_up.json()["low_balance"] is False
    for n in range(4):  # 6 → 2: below 4 after the third
        assert tenant.post("/v1/generations", {"prompt": f"spend {n}", "reuse": False}).status_code == 202
    [hit] = target.wait_for(1)
    event = _verified(tenant, hit)
    assert event["type"] == "account.low_balance"
    assert event["data"]["threshold"] == 4 and event["data"]["balance"] < 4
    assert tenant.get("/v1/account/spend-controls").json()["low_balance"] is True


def test_spend_controls_refuse_bad_input_naming_the_field(tenant):
    for body, field in [
        ({"daily_cap": -1}, "daily_cap"),
        ({"monthly_cap": "10"}, "monthly_cap"),
        ({"webhook_url": "http://example.com/x"}, "webhook_url"),
        ({"daily_limit": 3}, "daily_limit"),
    ]:
        answer = tenant.http.patch(tenant.base + "/v1/account/spend-controls", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert field in answer.text
    assert tenant.get("/v1/account/spend-controls").json()["daily_cap"] is None
