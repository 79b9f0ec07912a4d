"""Cloud Functions entry points, nothing else: each hands its request to its Flask app."""

import flask
import functions_framework

from lote.web import api_app, dispatch, stripe_app, worker_app


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    """The public HTTP API: generations, batches, account (Bearer API keys)."""
    return dispatch(api_app(), request)


@functions_framework.http
def worker(request: flask.Request) -> flask.Response:
    """The Cloud Tasks target: one image per task (OIDC-authenticated)."""
    return dispatch(worker_app(), request)


@functions_framework.http
def stripe_webhook(request: flask.Request) -> flask.Response:
    """Stripe's events (signature checked on the raw body): credit purchases and refunds."""
    return dispatch(stripe_app(), request)
