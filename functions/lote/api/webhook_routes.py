"""Webhook routes: deliveries (list, read, redeliver) and the tenant's signing secret."""

from __future__ import annotations

import flask

from lote.api.http import authenticated, respond
from lote.webhooks import service as webhooks


def register(app: flask.Flask) -> None:
    """Attach the routes to the `api` app."""

    @app.get("/v1/webhooks/deliveries")
    def list_deliveries() -> flask.Response:
        services, caller = authenticated()
        args = flask.request.args
        return respond(200, webhooks.page(services, caller, args.get("status"), args.get("page_token")))

    @app.get("/v1/webhooks/deliveries/<delivery_id>")
    def get_delivery(delivery_id: str) -> flask.Response:
        services, caller = authenticated()
        return respond(200, webhooks.get(services, caller, delivery_id))

    @app.post("/v1/webhooks/deliveries/<delivery_id>/redeliver")
    def redeliver(delivery_id: str) -> flask.Response:
        services, caller = authenticated()
        return respond(202, webhooks.redeliver(services, caller, delivery_id))

    @app.get("/v1/account/webhook-secret")
    def webhook_secret() -> flask.Response:
        services, caller = authenticated()
        return respond(200, webhooks.secret(services, caller), {"Cache-Control": "no-store"})

    @app.post("/v1/account/webhook-secret/rotate")
    def rotate_webhook_secret() -> flask.Response:
        services, caller = authenticated()
        return respond(200, webhooks.rotate(services, caller), {"Cache-Control": "no-store"})
