"""Buying credits: a Stripe Checkout Session per request, one Stripe customer per tenant."""

from __future__ import annotations

from urllib.parse import urlsplit

from lote import ids
from lote.billing import ledger
from lote.billing.schemas import CheckoutAnswer, CheckoutRequest, Pack, PackList
from lote.errors import InvalidRequest, NotFound
from lote.services import Services

CUSTOMER_FIELD = "stripe_customer_id"


def packs(services: Services) -> PackList:
    """The configured credit packs, smallest first."""
    found = sorted(services.settings.credit_packs.items(), key=lambda item: (item[1], item[0]))
    return PackList(packs=[Pack(pack=name, credits=credits) for name, credits in found])


def _return_url(services: Services, given: str | None, configured: str | None, field: str) -> str:
    url = given or configured
    if url is None:
        raise InvalidRequest(f"{field} is required (this deployment has no default)", {"field": field})
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a bracketed host that is not an IPv6 address
        raise InvalidRequest(f"{field} is not a valid URL", {"field": field}) from None
    allowed = {"https", "http"} if services.settings.is_local else {"https"}
    if parts.scheme not in allowed or not parts.hostname:
        raise InvalidRequest(
            f"{field} must be an absolute {' or '.join(sorted(allowed))} URL", {"field": field}
        )
    return url


def customer_id(services: Services, tenant_id: str, tenant: dict[str, object]) -> str:
    """The tenant's Stripe customer, created on the first checkout and reused after."""
    existing = tenant.get(CUSTOMER_FIELD)
    if isinstance(existing, str) and existing:
        return existing
    created = services.stripe.create_customer(tenant_id, str(tenant.get("name", tenant_id)))
    ledger.tenant_ref(services.firestore.db, tenant_id).update({CUSTOMER_FIELD: created})
    return created


def start(services: Services, tenant_id: str, req: CheckoutRequest, idem: str | None) -> CheckoutAnswer:
    """A Checkout Session for one pack; the grant happens when Stripe reports the payment."""
    credits = services.settings.credit_packs.get(req.pack)
    if credits is None:
        raise InvalidRequest(
            f"no credit pack {req.pack!r}",
            {"field": "pack", "packs": sorted(services.settings.credit_packs)},
        )
    success = _return_url(services, req.success_url, services.settings.checkout_success_url, "success_url")
    cancel = _return_url(services, req.cancel_url, services.settings.checkout_cancel_url, "cancel_url")
    tenant = ledger.tenant_ref(services.firestore.db, tenant_id).get().to_dict()
    if tenant is None:
        raise NotFound("no such tenant", {"id": tenant_id})
    price = services.stripe.price_id(req.pack)
    if price is None:
        from lote.clients.stripe import BillingMisconfigured

        raise BillingMisconfigured(
            f"credit pack {req.pack!r} has no active Stripe price with that lookup key"
        )
    metadata = {"tenant_id": tenant_id, "pack": req.pack, "credits": str(credits)}
    params = {
        "mode": "payment",
        "customer": customer_id(services, tenant_id, tenant),
        "client_reference_id": tenant_id,
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success,
        "cancel_url": cancel,
        "metadata": metadata,
        # On the PaymentIntent too, so a refund's charge can be traced without our own records.
        "payment_intent_data": {"metadata": metadata},
    }
    # Without a client key every call is a new session; with one, a retried request gets the same.
    request_key = ids.sha256_hex(f"{tenant_id}:{idem}:{req.model_dump_json()}") if idem else ids.new_id("co")
    session = services.stripe.create_checkout_session(params, f"lote-checkout-{request_key}")
    return CheckoutAnswer(session_id=session.id, url=session.url, pack=req.pack, credits=credits)
