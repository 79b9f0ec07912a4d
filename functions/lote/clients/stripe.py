"""Stripe, built on first use: customers, prices by lookup key, Checkout Sessions, event signatures."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lote.clients.lazy import Lazy
from lote.errors import LoteError, Unavailable
from lote.settings import Settings

if TYPE_CHECKING:
    import stripe

log = logging.getLogger("lote.stripe")
T = TypeVar("T")
PRICE_CACHE_S = 300.0


class BillingUnavailable(Unavailable):
    """Stripe is not configured here, or did not answer; nothing was charged."""

    code = "billing_unavailable"


class BillingMisconfigured(LoteError):
    """Stripe refused our own request (bad key, unknown price): an operator has to fix it."""

    status, code = 500, "billing_misconfigured"


@dataclass(frozen=True)
class CheckoutSession:
    """What the API returns about a session it created."""

    id: str
    url: str


@contextmanager
def _translated() -> Iterator[None]:
    """Stripe's errors as ours: transient ones 503 (retry), our own mistakes 500 (logged)."""
    import stripe

    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        log.warning("stripe unavailable: %s", exc)
        raise BillingUnavailable(
            "the payment provider did not answer; retry", headers={"Retry-After": "5"}
        ) from exc
    except stripe.StripeError as exc:
        log.error("stripe refused a request: %s", exc)
        raise BillingMisconfigured("billing is misconfigured; the operator has been told") from exc


class StripeClient:
    """One stripe.StripeClient per process; prices by lookup key cached for five minutes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Lazy[stripe.StripeClient] = Lazy(self._build)
        self._prices: dict[str, tuple[float, str | None]] = {}

    @property
    def client(self) -> stripe.StripeClient:
        """The Stripe client; 503 `billing_unavailable` when no secret key is configured."""
        return self._client.get()

    def _build(self) -> stripe.StripeClient:
        key = self._settings.stripe_secret_key
        if key is None or not key.get_secret_value():
            raise BillingUnavailable("billing is not configured on this deployment")
        import stripe

        base = self._settings.stripe_api_base
        return stripe.StripeClient(
            key.get_secret_value(),
            base_addresses={"api": base} if base else None,
            max_network_retries=2,  # Stripe's retries reuse idempotency keys: safe
        )

    def _call(self, fn: Callable[[], T]) -> T:
        with _translated():
            return fn()

    def create_customer(self, tenant_id: str, name: str) -> str:
        """A customer for the tenant; the idempotency key makes racing first checkouts share one."""
        customer = self._call(
            lambda: self.client.v1.customers.create(
                params={"name": name, "metadata": {"tenant_id": tenant_id}},
                options={"idempotency_key": f"lote-customer-{tenant_id}"},
            )
        )
        return str(customer.id)

    def price_id(self, lookup_key: str) -> str | None:
        """The active price with this lookup key, or None."""
        now = time.monotonic()
        cached = self._prices.get(lookup_key)
        if cached is not None and cached[0] > now:
            return cached[1]
        prices = self._call(
            lambda: self.client.v1.prices.list(
                params={"lookup_keys": [lookup_key], "active": True, "limit": 1}
            )
        )
        found = str(prices.data[0].id) if prices.data else None
        self._prices[lookup_key] = (now + PRICE_CACHE_S, found)
        return found

    def payment_intent_metadata(self, intent_id: str) -> dict[str, str]:
        """The metadata of a PaymentIntent (where checkout put the tenant and the credits)."""
        import stripe

        try:
            intent = self.client.v1.payment_intents.retrieve(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return {}  # not a payment of this Stripe account
            with _translated():
                raise
        except stripe.StripeError:
            with _translated():
                raise
        metadata: dict[str, Any] = intent.metadata.to_dict() if intent.metadata else {}
        return {str(k): str(v) for k, v in metadata.items()}

    def charge(self, charge_id: str) -> dict[str, Any] | None:
        """A charge as its events carry it, or None when this account has no such charge."""
        import stripe

        try:
            found = self.client.v1.charges.retrieve(charge_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            with _translated():
                raise
        except stripe.StripeError:
            with _translated():
                raise
        charge: dict[str, Any] = found.to_dict()
        return charge

    def charge_payment_intent(self, charge_id: str) -> str | None:
        """The PaymentIntent of a charge (older event payloads name only the charge)."""
        intent = (self.charge(charge_id) or {}).get("payment_intent")
        return str(intent.get("id") if isinstance(intent, dict) else intent) if intent else None

    def recent(self, kind: str, since: int) -> Iterator[dict[str, Any]]:
        """Every object of `kind` (`checkout_sessions`, `disputes`, `refunds`) created since `since`
        (seconds since the epoch), newest first, page after page (the reconciliation's view)."""
        service = {
            "checkout_sessions": lambda: self.client.v1.checkout.sessions,
            "disputes": lambda: self.client.v1.disputes,
            "refunds": lambda: self.client.v1.refunds,
        }[kind]()
        after: str | None = None
        while True:
            params: dict[str, Any] = {"created": {"gte": since}, "limit": 100}
            if after is not None:
                params["starting_after"] = after
            page = self._call(lambda p=params: service.list(params=p))  # type: ignore[attr-defined,misc]
            for item in page.data:
                yield item.to_dict()
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    def create_checkout_session(self, params: dict[str, Any], idempotency_key: str) -> CheckoutSession:
        """A hosted Checkout Session."""
        session = self._call(
            lambda: self.client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        )
        return CheckoutSession(id=str(session.id), url=str(session.url))
