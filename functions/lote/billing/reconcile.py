"""Reconciliation with Stripe: what Stripe knows and lote did not record, settled once.

Webhooks can be missed for good: a completed session whose deliveries ran out (Stripe retries live
events for 3 days, test events for hours), a session for a tenant lote did not know then, an
endpoint not subscribed to an event type. Cloud Scheduler (Terraform `stripe_reconcile`) and
`lote-admin reconcile` list the account's recent Checkout Sessions, refunds and disputes through
the Stripe API and apply each through the same handlers as its event (stripe_events.py): the
ledger entry ids derive from the Stripe objects, so what an event already did is not done twice,
and running this often is safe. What it cannot settle it logs as `stripe reconcile: unsettled`
(Terraform's `stripe_unsettled` metric alerts on it).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from lote import logs
from lote.billing import credits, stripe_events
from lote.errors import Unavailable
from lote.services import Services

log = logging.getLogger("lote.billing")
# Outcomes that mean the object is in the ledger as it should be (now or before).
SETTLED = frozenset({"granted", "already_granted", "clawed_back", "nothing_to_claw_back", "disputed",
                     "already_disputed", "returned", "already_returned", "nothing_to_return", "inquiry",
                     "given_back", "already_given_back", "nothing_to_give_back", "awaiting_payment",
                     "not_ours", "unknown_payment", "ignored"})  # fmt: skip


def reconcile(services: Services, lookback_s: int | None = None) -> dict[str, int]:
    """Apply every recent session, refund and dispute the ledger may lack; returns outcomes counted
    by kind (`kind:outcome`) and `unsettled`."""
    since = int(time.time()) - (lookback_s or services.settings.stripe_reconcile_lookback_s)
    done: Counter[str] = Counter()
    stripe = services.stripe
    # Purchases first: a refund or dispute of a purchase settled in this run then finds it.
    for session in stripe.recent("checkout_sessions", since):
        if session.get("mode") == "payment" and session.get("status") == "complete":
            _apply(services, done, "session", "checkout.session.completed", session, stripe_events.purchase)
    for refund in stripe.recent("refunds", since):
        if refund.get("status") == "failed":
            _apply(services, done, "refund", "charge.refund.updated", refund, stripe_events.refund_updated)
        elif refund.get("charge"):
            charge = stripe.charge(str(refund["charge"]))
            if charge is not None:
                _apply(services, done, "refund", "charge.refunded", charge, stripe_events.clawback)
    for dispute in stripe.recent("disputes", since):
        final = str(dispute.get("status")) in credits.DISPUTE_FINAL
        kind = "charge.dispute.closed" if final else "charge.dispute.created"
        if final and str(dispute.get("status")) not in credits.DISPUTE_RETURNED:
            # A lost dispute: its chargeback first (a no-op when the created event was applied).
            _apply(services, done, "dispute", "charge.dispute.created", dispute, stripe_events.chargeback)
        _apply(services, done, "dispute", kind, dispute, stripe_events.chargeback)
    return dict(done)


def _apply(
    services: Services,
    done: Counter[str],
    kind: str,
    event_type: str,
    obj: dict[str, Any],
    handler: Callable[[Services, dict[str, Any]], str],
) -> None:
    """One object through its event's handler, as if Stripe had delivered the event."""
    event = {"id": f"reconcile:{obj.get('id')}", "type": event_type, "data": {"object": obj}}
    try:
        outcome = handler(services, event)
    except Unavailable as exc:  # e.g. a refund of one of our payments whose purchase is unrecorded
        outcome = f"unavailable: {exc.message}"
    done[f"{kind}:{outcome.split(':')[0]}"] += 1
    if outcome not in SETTLED:
        done["unsettled"] += 1
        logs.emit(log, logging.ERROR, "stripe.unsettled", "stripe reconcile: unsettled %s %s: %s", kind,
                  obj.get("id"), outcome, kind=kind, object_id=obj.get("id"), outcome=outcome)  # fmt: skip
    elif not outcome.startswith(("already", "nothing", "not_", "unknown", "ignored", "awaiting", "inquiry")):
        log.warning("stripe reconcile: %s %s %s (its event was missed)", kind, obj.get("id"), outcome)
