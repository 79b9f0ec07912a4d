"""The three functions' Flask apps: the web layer (lote/web.py) with each function's routes."""

from __future__ import annotations

from functools import lru_cache

import flask

from lote import web
from lote.services import Services


def _api_routes(app: flask.Flask) -> None:
    from lote.api import (
        access_routes,
        account_routes,
        app_routes,
        batch_routes,
        billing_routes,
        cors,
        generation_routes,
        webhook_routes,
    )
    from lote.api.http import add_rate_headers

    app.after_request(add_rate_headers)
    cors.register(app)

    access_routes.register(app)
    app_routes.register(app)
    generation_routes.register(app)
    batch_routes.register(app)
    account_routes.register(app)
    billing_routes.register(app)
    webhook_routes.register(app)


def _worker_routes(app: flask.Flask) -> None:
    from lote.api import task_routes

    task_routes.register(app)


def _stripe_routes(app: flask.Flask) -> None:
    from lote.api import billing_routes

    billing_routes.register_webhook(app)


@lru_cache(maxsize=1)
def api_app() -> flask.Flask:
    """The `api` function's Flask app, built once per process."""
    return web.create("api", _api_routes)


def build_api_app(services: Services) -> flask.Flask:
    """An `api` app bound to `services` instead of the process's (another instance in a test)."""
    return web.create("api", _api_routes, services)


@lru_cache(maxsize=1)
def worker_app() -> flask.Flask:
    """The `worker` function's Flask app, built once per process."""
    return web.create("worker", _worker_routes)


@lru_cache(maxsize=1)
def stripe_app() -> flask.Flask:
    """The `stripe_webhook` function's Flask app, built once per process."""
    return web.create("stripe_webhook", _stripe_routes)
