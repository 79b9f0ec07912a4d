"""Buying credits through Stripe (the offline fake, the real stripe library and signing scheme)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from lote.billing import stripe_events
from lote.services import Services
from lote.tenants.store import TENANTS
from lote_local.stack import LOCAL_PACK_PRICES, Stack
from lote_local.stripe_fake import sign
from tests.integration.test_credits import _balance, _ledger


def _deliver(
    stack: Stack, webhook: str, event: dict[str, Any], header: str | None = None
) -> requests.Response:
    """POST an event as Stripe does: the exact bytes, signed with the endpoint's secret."""
    payload = json.dumps(event)
    signature = header if header is not None else sign(payload, stack.stripe_webhook_secret)
    return requests.post(webhook, data=payload.encode(), timeout=30,
                         headers={"Content-Type": "application/json", "Stripe-Signature": signature})  # fmt: skip


def _buy(tenant, fake: str, pack: str = "credits_1000") -> dict[str, Any]:
    """Checkout, then pay on the fake (which sends the signed event to the webhook)."""
    session = tenant.post("/v1/billing/checkout", {"pack": pack})
    assert session.status_code == 201, session.text
    paid = requests.post(f"{fake}/_fake/sessions/{session.json()['session_id']}/complete", timeout=30).json()
    assert paid["status"] == 200
    return {**session.json(), **paid}


def _fake_requests(fake: str, tenant_id: str, path: str) -> list[dict[str, Any]]:
    seen = requests.get(f"{fake}/_fake/requests", timeout=10).json()
    return [r for r in seen if r["path"] == path and tenant_id in json.dumps(r["params"])]


def test_packs_are_listed_smallest_first(tenant):
    packs = tenant.get("/v1/billing/packs").json()["packs"]
    assert [p["pack"] for p in packs] == list(LOCAL_PACK_PRICES)
    assert [p["credits"] for p in packs] == [100, 1000, 10000]


def test_checkout_creates_the_customer_once_and_a_session_per_request(tenant, fake: str, services: Services):
    first = tenant.post("/v1/billing/checkout", {"pack": "credits_100"})
    second = tenant.post("/v1/billing/checkout", {"pack": "credits_1000"})
    assert first.status_code == second.status_code == 201
    assert first.json()["url"].startswith(f"{fake}/checkout/cs_test_")
    assert first.json()["session_id"] != second.json()["session_id"]
    assert (first.json()["credits"], second.json()["credits"]) == (100, 1000)
    assert len(_fake_requests(fake, tenant.tenant_id, "/v1/customers")) == 1
    sessions = _fake_requests(fake, tenant.tenant_id, "/v1/checkout/sessions")
    customer = (
        services.firestore.db.collection(TENANTS).document(tenant.tenant_id).get().get("stripe_customer_id")
    )
    assert [s["params"]["customer"] for s in sessions] == [customer, customer]
    assert sessions[0]["params"]["metadata"] == {
        "tenant_id": tenant.tenant_id,
        "pack": "credits_100",
        "credits": "100",
    }


def test_checkout_replays_with_the_same_idempotency_key(tenant):
    headers = {"Idempotency-Key": "buy-once"}
    first = tenant.post("/v1/billing/checkout", {"pack": "credits_100"}, headers=headers)
    again = tenant.post("/v1/billing/checkout", {"pack": "credits_100"}, headers=headers)
    assert first.json()["session_id"] == again.json()["session_id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"pack": "credits_7"}, "pack"),
        ({}, "pack"),
        ({"pack": "credits_100", "success_url": "ftp://x"}, "success_url"),
    ],
)
def test_bad_checkout_requests_name_the_field_and_call_nothing(tenant, fake: str, body, field):
    response = tenant.post("/v1/billing/checkout", body)
    assert response.status_code == 400
    error = response.json()["error"]
    named = error["details"].get("field") or error["details"]["errors"][0]["field"]
    assert named == field
    assert _fake_requests(fake, tenant.tenant_id, "/v1/customers") == []


def test_paying_grants_the_pack_once_even_when_the_event_is_delivered_again(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    bought = _buy(tenant, fake)
    assert _balance(services, tenant.tenant_id) == 1000
    event = bought["event"]
    # Stripe redelivers: once more in sequence, then ten at once.
    assert _deliver(stack, webhook, event).json()["outcome"] == "duplicate"
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: _deliver(stack, webhook, event), range(10)))
    assert {a.status_code for a in answers} == {200}
    assert _balance(services, tenant.tenant_id) == 1000
    purchases = [e for e in _ledger(services, tenant.tenant_id) if e["reason"] == "purchase"]
    assert len(purchases) == 1 and purchases[0]["reference"] == event["id"]
    # Another event about the same session (a second delivery Stripe numbered anew) grants nothing either.
    assert _deliver(stack, webhook, {**event, "id": event["id"] + "x"}).json()["outcome"] == "already_granted"
    assert _balance(services, tenant.tenant_id) == 1000


def test_forged_and_stale_signatures_are_400_and_write_nothing(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    session = tenant.post("/v1/billing/checkout", {"pack": "credits_100"}).json()
    event = {"id": "evt_forged_" + tenant.tenant_id[-8:], "object": "event", "type": "checkout.session.completed",
             "data": {"object": {"id": session["session_id"], "payment_status": "paid", "payment_intent": "pi_x",
                                 "metadata": {"tenant_id": tenant.tenant_id, "credits": "100000"}}}}  # fmt: skip
    payload = json.dumps(event)
    for header in (
        sign(payload, "whsec_guessed"),
        sign(payload, stack.stripe_webhook_secret, timestamp=1),
        "t=1,v1=00",
    ):
        response = _deliver(stack, webhook, event, header)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_signature"
    unsigned = requests.post(webhook, data=payload.encode(), timeout=10)
    assert unsigned.status_code == 400
    assert not services.firestore.db.collection(stripe_events.EVENTS).document(event["id"]).get().exists
    assert _balance(services, tenant.tenant_id) == 0


def test_unpaid_sessions_and_unknown_event_types_are_acknowledged_without_credits(
    stack: Stack, new_tenant, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    unpaid = {"id": "evt_unpaid_" + tenant.tenant_id[-8:], "type": "checkout.session.completed",
              "data": {"object": {"id": "cs_x", "payment_status": "unpaid",
                                  "metadata": {"tenant_id": tenant.tenant_id, "credits": "100"}}}}  # fmt: skip
    assert _deliver(stack, webhook, unpaid).json()["outcome"] == "awaiting_payment"
    other = {"id": "evt_other_" + tenant.tenant_id[-8:], "type": "customer.updated", "data": {"object": {}}}
    assert _deliver(stack, webhook, other).json() == {"received": True, "outcome": "ignored"}
    assert _balance(services, tenant.tenant_id) == 0


def test_refunds_claw_back_proportionally_and_a_negative_balance_blocks_new_work(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    bought = _buy(tenant, fake, "credits_1000")  # 4000 cents
    charge = bought["charge"]
    spent = tenant.post("/v1/generations", {"prompt": "x"})
    assert spent.status_code == 202
    price = 1000 - _balance(services, tenant.tenant_id)
    # A quarter refunded, then the rest: 250 credits, then 750 more; each event once.
    quarter = requests.post(f"{fake}/_fake/charges/{charge}/refund", json={"amount": 1000}, timeout=30).json()
    assert quarter["status"] == 200
    assert _balance(services, tenant.tenant_id) == 750 - price
    assert _deliver(stack, webhook, quarter["event"]).json()["outcome"] == "duplicate"
    rest = requests.post(f"{fake}/_fake/charges/{charge}/refund", json={}, timeout=30).json()
    assert rest["status"] == 200
    assert _balance(services, tenant.tenant_id) == -price
    clawbacks = sorted(e["delta"] for e in _ledger(services, tenant.tenant_id) if e["reason"] == "clawback")
    assert clawbacks == [-750, -250]
    # The older event arriving late changes nothing: the clawback follows the cumulative refund.
    assert (
        _deliver(stack, webhook, {**quarter["event"], "id": quarter["event"]["id"] + "late"}).json()[
            "outcome"
        ]
        == "nothing_to_claw_back"
    )
    refused = tenant.post("/v1/generations", {"prompt": "x"})
    assert refused.status_code == 402 and refused.json()["error"]["details"]["available"] == -price
    assert tenant.post("/v1/batches", {"items": [{"reference": "a", "prompt": "x"}]}).status_code == 402


def test_a_refund_seen_before_its_purchase_is_retried_until_the_purchase_lands(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    session = tenant.post("/v1/billing/checkout", {"pack": "credits_100"}).json()
    # Paid and refunded at Stripe, but the events reach us refund first.
    paid = requests.post(
        f"{fake}/_fake/sessions/{session['session_id']}/complete?deliver=0", timeout=30
    ).json()
    refund = requests.post(
        f"{fake}/_fake/charges/{paid['charge']}/refund?deliver=0", json={}, timeout=30
    ).json()
    early = _deliver(stack, webhook, refund["event"])
    assert early.status_code == 503 and early.headers["Retry-After"]
    assert (
        not services.firestore.db.collection(stripe_events.EVENTS)
        .document(refund["event"]["id"])
        .get()
        .exists
    )
    assert _deliver(stack, webhook, paid["event"]).json()["outcome"] == "granted"
    assert _deliver(stack, webhook, refund["event"]).json()["outcome"] == "clawed_back"  # Stripe's retry
    assert _balance(services, tenant.tenant_id) == 0


def test_refunds_of_charges_that_are_not_ours_are_acknowledged(stack: Stack, webhook: str):
    other = {"id": "evt_not_ours_1", "type": "charge.refunded",
             "data": {"object": {"id": "ch_x", "payment_intent": "pi_unknown", "amount": 500,
                                 "amount_refunded": 500, "metadata": {}}}}  # fmt: skip
    response = _deliver(stack, webhook, other)
    assert response.status_code == 200 and response.json()["outcome"] == "unknown_payment"
