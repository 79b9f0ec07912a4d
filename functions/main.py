"""Cloud Functions entry points: each hands its request to its Flask app (and the framework's own
404 is rendered as lote's JSON error)."""

import flask
import functions_framework
from werkzeug.exceptions import NotFound

from lote.api.apps import api_app, stripe_app, worker_app
from lote.web import dispatch, unrouted

# The framework routes every path to the function except those its catch-all cannot match (an
# encoded newline): those get its 404, which must be our JSON error too.
functions_framework.errorhandler(NotFound)(unrouted)


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
