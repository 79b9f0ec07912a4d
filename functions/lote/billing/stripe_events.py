"""Stripe events: signature checked on the raw body, each event applied once, credits through the ledger.

`stripe_events/{event id}` records every event handled; ledger entry ids come from the Checkout
Session (purchases), the charge and refunded amount (clawbacks), the dispute (chargebacks and their
return) and the refund (a refund that failed), so neither a redelivered event, two events about
the same payment, nor the reconciliation (reconcile.py) applying what an event missed can move
credits twice.

What each event does:
- `checkout.session.completed` / `.async_payment_succeeded`: paid → the pack's credits, once.
- `charge.refunded`: credits in proportion to the cumulative refunded amount are taken back.
- `charge.dispute.created` / `.funds_withdrawn` (not an inquiry): the disputed share is taken back,
  once per dispute, whatever refunds left (a balance may go negative: admissions stop, 402
  `insufficient_credits`, until it is settled); `.closed` won (or an inquiry closed) /
  `.funds_reinstated`: what that dispute took is given back, once. A win seen before the dispute
  itself is remembered, so a late `created` takes nothing.
- `charge.refund.updated` with a failed refund: what that refund took is given back.
- an event whose `livemode` differs from the deployment's key is refused (400): a test-mode event
  signed with a shared secret must not grant real credits.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lote import timeutil, transactions
from lote.billing import credits, ledger
from lote.billing.ledger import TENANTS, Entry
from lote.errors import InvalidRequest, Unavailable
from lote.services import Services
from lote.settings import Settings

log = logging.getLogger("lote.billing")
EVENTS = "stripe_events"
PAYMENTS = "stripe_payments"
TOLERANCE_S = 300  # Stripe's default: older signatures are replays
_EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,200}")


class WebhookDisabled(Unavailable):
    """No signing secret is configured, so no event can be trusted; Stripe retries for 3 days."""

    code = "stripe_webhook_disabled"


class LivemodeMismatch(InvalidRequest):
    """A test-mode event reached a live deployment, or the reverse."""

    code = "livemode_mismatch"


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
    live = settings.stripe_livemode
    if live is not None and bool(event.get("livemode")) is not live:
        mode = "live" if event.get("livemode") else "test"
        raise LivemodeMismatch(f"a {mode}-mode event reached a {'live' if live else 'test'}-mode deployment",
                               {"field": "livemode"})  # fmt: skip
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


def purchase(services: Services, event: dict[str, Any]) -> str:
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


def _payment(services: Services, obj: dict[str, Any]) -> tuple[Any, str | None]:
    """The recorded purchase behind a charge, refund or dispute (by its PaymentIntent; older
    payloads name only the charge), or why there is none: `not_ours` (no intent, or another
    account's), or 503 while one of ours is not recorded yet (events arrive in any order; Stripe
    delivers this one again later)."""
    intent = obj.get("payment_intent")
    if not intent and obj.get("object") != "charge" and obj.get("charge"):
        intent = services.stripe.charge_payment_intent(str(obj["charge"]))
    if not intent:
        return None, "not_ours"
    ref = services.firestore.db.collection(PAYMENTS).document(str(intent))
    if ref.get().exists:
        return ref, None
    if services.stripe.payment_intent_metadata(str(intent)).get("tenant_id"):
        raise Unavailable("the purchase of this charge is not recorded yet", headers={"Retry-After": "60"})
    return None, "unknown_payment"


@dataclass(frozen=True)
class _Paid:
    """A recorded purchase as one commit reads it: its document, its tenant, and the precondition
    (the document's update time) every write to it carries."""

    ref: Any
    doc: dict[str, Any]
    tenant: Any
    option: Any

    @property
    def credits(self) -> int:
        return int(self.doc["credits"])

    @property
    def amount(self) -> int:
        return int(self.doc.get("amount") or self.doc.get("amount_total") or 0)


def _on_payment(
    services: Services, obj: dict[str, Any], change: Callable[[Any, _Paid], tuple[str, bool]]
) -> str:
    """Apply `change` to the purchase behind `obj` in one optimistic commit (its outcome), or say
    why there is none (see _payment)."""
    payment_ref, missing = _payment(services, obj)
    if missing:
        return missing
    db = services.firestore.db

    def build(batch: Any) -> tuple[str, bool]:
        payment = payment_ref.get()
        doc = payment.to_dict() or {}
        tenant = db.collection(TENANTS).document(doc["tenant_id"]).get()
        return change(
            batch, _Paid(payment_ref, doc, tenant, db.write_option(last_update_time=payment.update_time))
        )

    return transactions.optimistic(db, build)


def clawback(services: Services, event: dict[str, Any]) -> str:
    charge = event["data"]["object"]
    amount, refunded = int(charge.get("amount") or 0), int(charge.get("amount_refunded") or 0)
    if amount <= 0:
        return "not_ours"
    db = services.firestore.db

    def change(batch: Any, paid: _Paid) -> tuple[str, bool]:
        # Stripe's amount_refunded is cumulative: the target covers every refund so far.
        target = min(
            credits.clawback_target(paid.credits, amount, refunded), paid.credits - _disputed(paid.doc)
        )
        delta = target - int(paid.doc.get("clawed_back", 0))
        if delta <= 0:
            return "nothing_to_claw_back", False
        note = f"refund of {refunded}/{amount} on Stripe charge {charge.get('id')}"
        # A refund that failed lowers the cumulative amount; a later refund may bring it back to a
        # figure already entered, so the failures so far are part of the id.
        failed = int(paid.doc.get("failed_refunds", 0))
        entry_id = f"clawback-{charge.get('id')}-{refunded}" + (f"-f{failed}" if failed else "")
        ledger.add(batch, db, paid.tenant, Entry(entry_id, -delta, "clawback", event["id"], note))
        update = {"clawed_back": target, "refunded": refunded, "amount": amount}
        batch.update(paid.ref, update, option=paid.option)
        return "clawed_back", True

    return _on_payment(services, charge, change)


def _disputed(paid: dict[str, Any], but: str | None = None) -> int:
    """Credits the payment's disputes hold taken (all of them, or all but `but`)."""
    return sum(int(d.get("taken", 0)) for k, d in (paid.get("disputes") or {}).items() if k != but)


def chargeback(services: Services, event: dict[str, Any]) -> str:
    dispute = event["data"]["object"]
    dispute_id, status = str(dispute.get("id", "")), str(dispute.get("status", ""))
    returned = event["type"] == "charge.dispute.funds_reinstated" or status in credits.DISPUTE_RETURNED
    db = services.firestore.db

    def change(batch: Any, paid: _Paid) -> tuple[str, bool]:
        seen = dict((paid.doc.get("disputes") or {}).get(dispute_id) or {})
        if returned:
            if seen.get("returned"):
                return "already_returned", False
            taken = int(seen.get("taken", 0))
            if taken:
                note = f"dispute {dispute_id} {status or 'reinstated'}: its credits back"
                entry = Entry(f"dispute-return-{dispute_id}", taken, "reinstated", event["id"], note)
                ledger.add(batch, db, paid.tenant, entry)
            # Remembered even when nothing was taken: a `created` delivered late takes nothing then.
            settled = {**seen, "returned": True, "status": status}
            batch.update(paid.ref, {f"disputes.{dispute_id}": settled}, option=paid.option)
            return ("returned" if taken else "nothing_to_return"), True
        if seen.get("returned") or "taken" in seen:
            return "already_disputed", False
        if not credits.dispute_withdraws(status, str(event["type"])):
            return "inquiry", False  # no money moved yet
        taken_elsewhere = int(paid.doc.get("clawed_back", 0)) + _disputed(paid.doc, but=dispute_id)
        take = credits.dispute_take(
            paid.credits, paid.amount, int(dispute.get("amount") or 0), taken_elsewhere
        )
        if take:
            reason = dispute.get("reason", "unknown")
            note = f"chargeback {dispute_id} ({reason}) of {dispute.get('amount')}/{paid.amount}"
            ledger.add(
                batch, db, paid.tenant, Entry(f"dispute-{dispute_id}", -take, "dispute", event["id"], note)
            )
        batch.update(
            paid.ref, {f"disputes.{dispute_id}": {"taken": take, "status": status}}, option=paid.option
        )
        return "disputed", True

    return _on_payment(services, dispute, change)


def refund_updated(services: Services, event: dict[str, Any]) -> str:
    refund = event["data"]["object"]
    if refund.get("status") != "failed":
        return "ignored"
    refund_id, failed_amount = str(refund.get("id", "")), int(refund.get("amount") or 0)
    db = services.firestore.db

    def change(batch: Any, paid: _Paid) -> tuple[str, bool]:
        failed_ids = list(paid.doc.get("failed_refund_ids") or [])
        if refund_id in failed_ids:
            return "already_given_back", False
        clawed = int(paid.doc.get("clawed_back", 0))
        refunded = max(0, int(paid.doc.get("refunded", 0)) - failed_amount)
        target = credits.clawback_target(paid.credits, paid.amount, refunded)
        if clawed > target:
            note = f"refund {refund_id} failed ({refund.get('failure_reason', 'unknown')}): its credits back"
            entry = Entry(f"refund-failed-{refund_id}", clawed - target, "reinstated", event["id"], note)
            ledger.add(batch, db, paid.tenant, entry)
        failed = [*failed_ids, refund_id]
        update = {"clawed_back": min(target, clawed), "refunded": refunded, "failed_refunds": len(failed),
                  "failed_refund_ids": failed}  # fmt: skip
        batch.update(paid.ref, update, option=paid.option)
        return ("given_back" if clawed > target else "nothing_to_give_back"), True

    return _on_payment(services, refund, change)


_HANDLERS: dict[str, Callable[[Services, dict[str, Any]], str]] = {
    "checkout.session.completed": purchase,
    "checkout.session.async_payment_succeeded": purchase,
    "charge.refunded": clawback,
    "charge.dispute.created": chargeback,
    "charge.dispute.funds_withdrawn": chargeback,
    "charge.dispute.funds_reinstated": chargeback,
    "charge.dispute.closed": chargeback,
    "charge.refund.updated": refund_updated,
}
# What the Stripe endpoint must send (README, Terraform output `stripe_webhook_events`).
EVENT_TYPES = tuple(_HANDLERS)
