"""Billing routes: credit packs and checkout on `api`; Stripe's events on `stripe_webhook`."""

from __future__ import annotations

import flask

from lote.api.http import authenticated, json_body, parse, respond
from lote.billing import checkout, stripe_events
from lote.billing.schemas import CheckoutRequest
from lote.idempotency import check_header
from lote.web import current_services


def register(app: flask.Flask) -> None:
    """Attach the tenant's billing routes to the `api` app."""

    @app.get("/v1/billing/packs")
    def billing_packs() -> flask.Response:
        services, _ = authenticated()
        return respond(200, checkout.packs(services))

    @app.post("/v1/billing/checkout")
    def billing_checkout() -> flask.Response:
        services, caller = authenticated()
        req = parse(CheckoutRequest, json_body(flask.request))
        answer = checkout.start(
            services, caller.tenant_id, req, check_header(flask.request.headers.get("Idempotency-Key"))
        )
        return respond(201, answer)


def register_webhook(app: flask.Flask) -> None:
    """Attach the Stripe endpoint to the `stripe_webhook` app (the function's URL is its root)."""

    @app.post("/")
    def stripe_event() -> flask.Response:
        services = current_services()
        # The signature covers the exact bytes: read them raw, before anything parses them.
        payload = flask.request.get_data(cache=True)
        event = stripe_events.verify(
            services.settings, payload, flask.request.headers.get("Stripe-Signature")
        )
        return respond(200, {"received": True, "outcome": stripe_events.handle(services, event)})
