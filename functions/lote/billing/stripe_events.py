"""Stripe events: signature checked on the raw body, each event applied once, credits through the ledger.

`stripe_events/{event id}` records every event handled; ledger entry ids come from the Checkout
Session (purchases) and from the charge and refunded amount (clawbacks), so neither a redelivered
event nor two events about the same payment can move credits twice.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from lote import timeutil, transactions
from lote.billing import credits, ledger
from lote.billing.ledger import Entry
from lote.errors import InvalidRequest, Unavailable
from lote.services import Services
from lote.settings import Settings
from lote.tenants.store import TENANTS

log = logging.getLogger("lote.billing")
EVENTS = "stripe_events"
PAYMENTS = "stripe_payments"
TOLERANCE_S = 300  # Stripe's default: older signatures are replays
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,200}")


class WebhookDisabled(Unavailable):
    """No signing secret is configured, so no event can be trusted; Stripe retries for 3 days."""

    code = "stripe_webhook_disabled"


class InvalidSignature(InvalidRequest):
    """The Stripe-Signature header does not match the body, or is too old."""

    code = "invalid_signature"


def verify(settings: Settings, payload: bytes, header: str | None) -> dict[str, Any]:
    """The event, once its signature over these exact bytes is proven; nothing is parsed before."""
    secret = settings.stripe_webhook_secret
    if secret is None or not secret.get_secret_value():
        raise WebhookDisabled(
            "the Stripe webhook signing secret is not configured", headers={"Retry-After": "60"}
        )
    import stripe

    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), header or "", secret.get_secret_value(), TOLERANCE_S
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        raise InvalidSignature(
            "the Stripe-Signature header does not verify", {"header": "Stripe-Signature"}
        ) from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidRequest("the body is not JSON", {"field": "body"}) from None
    if not isinstance(event, dict) or not _EVENT_ID.fullmatch(str(event.get("id", ""))):
        raise InvalidRequest("the body is not a Stripe event", {"field": "id"})
    return event


def handle(services: Services, event: dict[str, Any]) -> str:
    """Apply an event once; returns what was done (types we do not handle are acknowledged)."""
    from google.api_core.exceptions import AlreadyExists

    db = services.firestore.db
    record = db.collection(EVENTS).document(event["id"])
    seen = record.get()
    if seen.exists:
        return "duplicate"
    handler = _HANDLERS.get(str(event.get("type")))
    outcome = handler(services, event) if handler else "ignored"
    try:
        record.create({"type": event.get("type"), "outcome": outcome, "livemode": bool(event.get("livemode")),
                       "received_at": timeutil.now()})  # fmt: skip
    except AlreadyExists:
        return "duplicate"  # a concurrent delivery recorded it; the ledger ids kept the effect single
    log.info("stripe event %s %s: %s", event["id"], event.get("type"), outcome)
    return outcome


def _purchase(services: Services, event: dict[str, Any]) -> str:
    session = event["data"]["object"]
    if session.get("payment_status") not in ("paid", "no_payment_required"):
        return "awaiting_payment"  # async methods: checkout.session.async_payment_succeeded follows
    metadata = session.get("metadata") or {}
    tenant_id, bought = metadata.get("tenant_id"), str(metadata.get("credits", ""))
    if not tenant_id or not bought.isdigit():
        return "not_ours"
    db = services.firestore.db
    entry_id = f"purchase-{session['id']}"
    note = f"{metadata.get('pack', 'credits')} via Stripe Checkout {session['id']}"

    def build(batch: Any) -> tuple[str, bool]:
        tenant = db.collection(TENANTS).document(tenant_id).get()
        if not tenant.exists:
            log.error("paid checkout %s for unknown tenant %s", session["id"], tenant_id)
            return "unknown_tenant", False
        if ledger.entry_ref(db, tenant_id, entry_id).get().exists:
            return "already_granted", False
        ledger.add(batch, db, tenant, Entry(entry_id, int(bought), "purchase", event["id"], note))
        if session.get("payment_intent"):
            payment = {"tenant_id": tenant_id, "credits": int(bought), "session_id": session["id"],
                       "amount_total": session.get("amount_total"), "currency": session.get("currency"),
                       "clawed_back": 0, "created_at": timeutil.now()}  # fmt: skip
            batch.create(db.collection(PAYMENTS).document(str(session["payment_intent"])), payment)
        return "granted", True

    return transactions.optimistic(db, build)


def _clawback(services: Services, event: dict[str, Any]) -> str:
    charge = event["data"]["object"]
    intent, amount = charge.get("payment_intent"), int(charge.get("amount") or 0)
    refunded = int(charge.get("amount_refunded") or 0)
    if not intent or amount <= 0:
        return "not_ours"
    db = services.firestore.db
    payment_ref = db.collection(PAYMENTS).document(str(intent))
    if not payment_ref.get().exists:
        # Events arrive in any order: a refund of one of our checkouts whose purchase is not recorded
        # yet is answered 503, so Stripe delivers it again later. The PaymentIntent says whose it is.
        if services.stripe.payment_intent_metadata(str(intent)).get("tenant_id"):
            raise Unavailable(
                "the purchase of this charge is not recorded yet", headers={"Retry-After": "60"}
            )
        return "unknown_payment"

    def build(batch: Any) -> tuple[str, bool]:
        payment = payment_ref.get()
        paid = payment.to_dict() or {}
        # Stripe's amount_refunded is cumulative: the target covers every refund so far.
        target = credits.clawback_target(int(paid["credits"]), amount, refunded)
        delta = target - int(paid.get("clawed_back", 0))
        if delta <= 0:
            return "nothing_to_claw_back", False
        tenant = db.collection(TENANTS).document(paid["tenant_id"]).get()
        note = f"refund of {refunded}/{amount} on Stripe charge {charge.get('id')}"
        entry_id = f"clawback-{charge.get('id')}-{refunded}"
        ledger.add(batch, db, tenant, Entry(entry_id, -delta, "clawback", event["id"], note))
        batch.update(payment_ref, {"clawed_back": target},
                     option=db.write_option(last_update_time=payment.update_time))  # fmt: skip
        return "clawed_back", True

    return transactions.optimistic(db, build)


_HANDLERS: dict[str, Callable[[Services, dict[str, Any]], str]] = {
    "checkout.session.completed": _purchase,
    "checkout.session.async_payment_succeeded": _purchase,
    "charge.refunded": _clawback,
}
