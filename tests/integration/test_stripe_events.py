"""What real Stripe sends that a happy path never does: chargebacks won and lost, inquiries, refunds
that fail, asynchronous payments, expired sessions, test-mode events, secret rolls, and deliveries
that never arrive (the reconciliation). The offline Stripe sends each as Stripe does; the recorded
payloads of tests/fixtures/stripe/ (each with its provenance) go through the same webhook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from lote.billing import reconcile
from lote.services import Services
from lote_local.stack import Stack
from tests.integration.test_billing import _buy, _deliver
from tests.integration.test_credits import _balance, _ledger

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"


def _fake(fake: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = requests.post(f"{fake}{path}", json=body or {}, timeout=30)
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def _reasons(services: Services, tenant_id: str) -> list[tuple[str, int]]:
    return sorted((e["reason"], e["delta"]) for e in _ledger(services, tenant_id) if e["reason"] != "debit")


def test_a_chargeback_takes_the_credits_back_once_and_a_won_dispute_gives_them_back(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    bought = _buy(tenant, fake, "credits_1000")
    opened = _fake(fake, f"/_fake/charges/{bought['charge']}/dispute", {"reason": "fraudulent"})
    assert opened["status"] == [200, 200]  # created, then funds_withdrawn: one chargeback
    assert _balance(services, tenant.tenant_id) == 0
    assert _deliver(stack, webhook, opened["events"][0]).json()["outcome"] == "duplicate"
    again = {**opened["events"][1], "id": opened["events"][1]["id"] + "x"}
    assert _deliver(stack, webhook, again).json()["outcome"] == "already_disputed"
    closed = _fake(fake, f"/_fake/disputes/{opened['dispute']}/close", {"status": "won"})
    assert closed["status"] == [200, 200]  # funds_reinstated, then closed: one return
    assert _balance(services, tenant.tenant_id) == 1000
    assert _reasons(services, tenant.tenant_id) == [
        ("dispute", -1000),
        ("purchase", 1000),
        ("reinstated", 1000),
    ]


def test_a_chargeback_after_spending_leaves_a_debt_that_refuses_work_and_a_loss_changes_nothing(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    bought = _buy(tenant, fake, "credits_100")
    assert tenant.post("/v1/generations", {"prompt": "spent before the chargeback"}).status_code == 202
    price = 100 - _balance(services, tenant.tenant_id)
    opened = _fake(fake, f"/_fake/charges/{bought['charge']}/dispute", {"reason": "fraudulent"})
    assert _balance(services, tenant.tenant_id) == -price
    refused = tenant.post("/v1/generations", {"prompt": "x"})
    assert refused.status_code == 402 and refused.json()["error"]["details"]["available"] == -price
    _fake(fake, f"/_fake/disputes/{opened['dispute']}/close", {"status": "lost"})
    assert _balance(services, tenant.tenant_id) == -price


def test_an_inquiry_takes_nothing_and_a_win_seen_before_its_chargeback_keeps_it_from_taking_anything(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    bought = _buy(tenant, fake, "credits_100")
    inquiry = _fake(fake, f"/_fake/charges/{bought['charge']}/dispute", {"inquiry": True})
    assert _balance(services, tenant.tenant_id) == 100
    _fake(fake, f"/_fake/disputes/{inquiry['dispute']}/close", {"status": "warning_closed"})
    assert _balance(services, tenant.tenant_id) == 100
    # A chargeback whose events arrive in reverse: closed (won) before created.
    late = _fake(fake, f"/_fake/charges/{bought['charge']}/dispute?deliver=0", {})
    won = _fake(fake, f"/_fake/disputes/{late['dispute']}/close?deliver=0", {"status": "won"})
    for event in [*reversed(won["events"]), *reversed(late["events"])]:
        assert _deliver(stack, webhook, event).status_code == 200
    assert _balance(services, tenant.tenant_id) == 100
    assert _reasons(services, tenant.tenant_id) == [("purchase", 100)]


def test_a_refund_that_fails_gives_its_credits_back_and_a_later_refund_takes_them_again(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    bought = _buy(tenant, fake, "credits_1000")  # 4000 cents
    refund = _fake(fake, f"/_fake/charges/{bought['charge']}/refund", {})
    assert _balance(services, tenant.tenant_id) == 0
    failed = _fake(
        fake, f"/_fake/refunds/{refund['refund']}/fail", {"failure_reason": "expired_or_canceled_card"}
    )
    assert failed["status"] == 200 and _balance(services, tenant.tenant_id) == 1000
    assert _deliver(stack, webhook, {**failed["event"], "id": failed["event"]["id"] + "x"}).json()[
        "outcome"
    ] == ("already_given_back")
    _fake(fake, f"/_fake/charges/{bought['charge']}/refund", {"amount": 2000})  # the operator refunds again
    assert _balance(services, tenant.tenant_id) == 500


def test_asynchronous_payments_grant_only_once_paid_and_expired_sessions_grant_nothing(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    sessions = [
        tenant.post("/v1/billing/checkout", {"pack": "credits_100"}).json()["session_id"] for _ in range(3)
    ]
    pending = _fake(fake, f"/_fake/sessions/{sessions[0]}/complete?async=1")
    assert pending["status"] == 200 and _balance(services, tenant.tenant_id) == 0
    assert _fake(fake, f"/_fake/sessions/{sessions[0]}/async", {"result": "failed"})["status"] == 200
    assert _balance(services, tenant.tenant_id) == 0
    _fake(fake, f"/_fake/sessions/{sessions[1]}/complete?async=1")
    assert _fake(fake, f"/_fake/sessions/{sessions[1]}/async", {"result": "succeeded"})["status"] == 200
    assert _balance(services, tenant.tenant_id) == 100
    assert _fake(fake, f"/_fake/sessions/{sessions[2]}/expire")["status"] == 200
    assert _reasons(services, tenant.tenant_id) == [("purchase", 100)]


def test_a_test_mode_event_is_refused_by_this_test_mode_deployment_only_when_live(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services
):
    tenant = new_tenant(credits=0)
    session = tenant.post("/v1/billing/checkout", {"pack": "credits_100"}).json()["session_id"]
    live = _fake(fake, f"/_fake/sessions/{session}/complete?livemode=1")
    assert live["status"] == 400
    answer = _deliver(stack, webhook, live["event"])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "livemode_mismatch"
    assert _balance(services, tenant.tenant_id) == 0
    test_mode = {**live["event"], "id": live["event"]["id"] + "t", "livemode": False}
    assert _deliver(stack, webhook, test_mode).json()["outcome"] == "granted"


def test_during_a_secret_roll_events_signed_with_both_secrets_are_accepted(
    stack: Stack, new_tenant, fake: str, services: Services
):
    tenant = new_tenant(credits=0)
    _fake(fake, "/_fake/secrets", {"secrets": ["whsec_the_next_one", stack.stripe_webhook_secret]})
    try:
        assert _buy(tenant, fake, "credits_100")["status"] == 200
        _fake(fake, "/_fake/secrets", {"secrets": ["whsec_the_next_one"]})  # rolled, lote not updated yet
        session = tenant.post("/v1/billing/checkout", {"pack": "credits_100"}).json()["session_id"]
        assert _fake(fake, f"/_fake/sessions/{session}/complete")["status"] == 400
    finally:
        _fake(fake, "/_fake/secrets", {"secrets": [stack.stripe_webhook_secret]})
    assert _balance(services, tenant.tenant_id) == 100


def test_the_reconciliation_settles_what_no_event_brought_once_and_names_what_it_cannot(
    stack: Stack, new_tenant, fake: str, services: Services, call_worker
):
    tenant = new_tenant(credits=0)
    session = tenant.post("/v1/billing/checkout", {"pack": "credits_1000"}).json()["session_id"]
    paid = _fake(fake, f"/_fake/sessions/{session}/complete?deliver=0")  # its deliveries ran out
    refund = _fake(fake, f"/_fake/charges/{paid['charge']}/refund?deliver=0", {"amount": 1000})
    disputed = _fake(fake, f"/_fake/charges/{paid['charge']}/dispute?deliver=0", {"amount": 3000})
    assert _balance(services, tenant.tenant_id) == 0
    # A paid session for a tenant lote does not know (deleted, or a typo in a manual session).
    stranger = _stranger_session(stack, fake)
    first = reconcile.reconcile(services)
    assert first["unsettled"] >= 1 and first["session:granted"] >= 1
    # 1000 bought; a quarter refunded (250); the dispute of the other three quarters (750).
    assert _reasons(services, tenant.tenant_id) == [("clawback", -250), ("dispute", -750), ("purchase", 1000)]
    assert _balance(services, tenant.tenant_id) == 0
    assert call_worker("/tasks/reconcile") == 200  # as Cloud Scheduler calls it: nothing twice
    assert _balance(services, tenant.tenant_id) == 0 and len(_ledger(services, tenant.tenant_id)) == 3
    # The missed events arriving late change nothing either.
    for event in (paid["event"], refund["event"], *disputed["events"]):
        assert _deliver(stack, stack.url(stack.config.stripe_webhook_port), event).status_code == 200
    assert _balance(services, tenant.tenant_id) == 0 and len(_ledger(services, tenant.tenant_id)) == 3
    assert stranger.startswith("cs_")


def _stranger_session(stack: Stack, fake: str) -> str:
    """A session paid at Stripe for a tenant id lote has never had, its event never delivered."""
    auth = {"Authorization": f"Bearer {stack.config.stripe_api_key}"}
    customer = requests.post(
        f"{fake}/v1/customers", data={"name": "stranger"}, headers=auth, timeout=10
    ).json()
    price = requests.get(
        f"{fake}/v1/prices", params={"lookup_keys[0]": "credits_100"}, headers=auth, timeout=10
    )
    form = {"mode": "payment", "customer": customer["id"], "line_items[0][price]": price.json()["data"][0]["id"],
            "line_items[0][quantity]": "1", "metadata[tenant_id]": "ten_nobody", "metadata[credits]": "100"}  # fmt: skip
    session = requests.post(f"{fake}/v1/checkout/sessions", data=form, headers=auth, timeout=10).json()
    _fake(fake, f"/_fake/sessions/{session['id']}/complete?deliver=0")
    return str(session["id"])


@pytest.mark.parametrize(
    ("recorded", "outcome"),
    [
        ("event-charge.dispute.created.json", "disputed"),
        ("event-charge.dispute.funds_withdrawn.json", "disputed"),
        ("event-charge.dispute.created.inquiry.basil.json", "disputed"),
        ("event-charge.dispute.closed.won.json", "nothing_to_return"),
        ("event-charge.dispute.closed.warning_closed.basil.json", "nothing_to_return"),
        ("event-charge.dispute.funds_reinstated.json", "nothing_to_return"),
        ("event-charge.dispute.closed.lost.json", "disputed"),
        ("event-charge.refunded.full.json", "clawed_back"),
        ("event-charge.refund.updated.failed.json", "nothing_to_give_back"),
    ],
)
def test_recorded_stripe_payloads_are_read_as_their_fields_say(
    stack: Stack, new_tenant, fake: str, webhook: str, services: Services, recorded: str, outcome: str
):
    # Each recorded event (tests/fixtures/stripe/, provenance inside) is pointed at a payment of
    # this tenant (its charge, PaymentIntent and amount) and otherwise delivered as recorded.
    tenant = new_tenant(credits=0)
    bought = _buy(tenant, fake, "credits_100")
    event = json.loads((RECORDED / recorded).read_text())["payload"]
    obj = event["data"]["object"]
    intent = bought["event"]["data"]["object"]["payment_intent"]
    recorded_amount = int(obj.get("amount") or 0)
    obj.update(charge=bought["charge"], payment_intent=intent)
    if obj.get("object") == "charge":
        share = int(obj.get("amount_refunded") or 0) / max(1, recorded_amount)
        obj.update(id=bought["charge"], amount=500, amount_refunded=round(500 * share), payment_intent=intent)
    else:
        obj["amount"] = 500  # credits_100's price on the offline Stripe
    event.update(id=f"{event['id']}_{tenant.tenant_id[-8:]}", livemode=False)
    answer = _deliver(stack, webhook, event)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == outcome
