"""The Flask app every function is built on (lote/api/apps.py adds the routes), and the one place
errors become responses. Imports nothing of lote.api: routes depend on this module, not back."""

from __future__ import annotations

import logging
from collections.abc import Callable

import flask
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from lote import errors, health, logs, tracing
from lote.services import Services, get_services

log = logging.getLogger("lote")

MAX_BODY_BYTES = 32 * 1024 * 1024  # Cloud Functions' own request limit
SERVICES = "lote.services"


def current_services() -> Services:
    """The services of the app handling this request: its own when it was built with them (a
    test's second instance, a test clock), else the process's."""
    bound: Services | None = flask.current_app.extensions.get(SERVICES)
    return bound if bound is not None else get_services()


_HTTP_ERRORS: dict[int, type[errors.LoteError]] = {
    400: errors.InvalidRequest,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


def render_error(error: errors.LoteError) -> flask.Response:
    """The JSON error response for a domain error."""
    response = flask.jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def create(
    name: str, register: Callable[[flask.Flask], None], services: Services | None = None
) -> flask.Flask:
    settings = (services or get_services()).settings
    logs.configure(settings)
    tracing.configure(settings)
    app = flask.Flask(name)
    if settings.trace_exporter != "none":
        # A server span per request, continuing the `traceparent` it carries (tracing.py).
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls="healthz")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if services is not None:
        app.extensions[SERVICES] = services

    @app.before_request
    def refuse_oversized_bodies() -> None:
        # Before authentication or any read: an oversized body costs nothing but this check.
        if (flask.request.content_length or 0) > MAX_BODY_BYTES:
            raise errors.PayloadTooLarge(
                f"the body is over {MAX_BODY_BYTES} bytes; send inputs through POST /v1/uploads",
                {"limit": MAX_BODY_BYTES},
            )

    @app.get("/healthz")
    def healthz() -> flask.Response:
        return flask.jsonify(health.report(name, current_services()))

    @app.errorhandler(errors.LoteError)
    def on_domain_error(error: errors.LoteError) -> flask.Response:
        return render_error(error)

    @app.errorhandler(HTTPException)
    def on_http_error(error: HTTPException) -> flask.Response:
        kind = _HTTP_ERRORS.get(error.code or 500, errors.LoteError)
        message = {404: "no such route", 405: f"method {flask.request.method} not allowed"}.get(
            error.code or 500, error.description or "error"
        )
        response = render_error(kind(message, {"path": flask.request.path}))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(error.valid_methods))  # RFC 9110 §15.5.6
        return response

    from google.api_core import exceptions as google_errors

    @app.errorhandler(google_errors.ServiceUnavailable)
    @app.errorhandler(google_errors.DeadlineExceeded)
    @app.errorhandler(google_errors.Aborted)
    @app.errorhandler(google_errors.RetryError)
    def on_dependency_down(error: Exception) -> flask.Response:
        log.warning("dependency unavailable on %s: %s", flask.request.path, error)
        return render_error(
            errors.Unavailable("a dependency is unavailable; retry shortly", headers={"Retry-After": "2"})
        )

    @app.errorhandler(Exception)
    def on_bug(error: Exception) -> flask.Response:
        # A fault, not a decision: logged with its traceback, answered without internals.
        log.exception("unhandled error on %s %s", flask.request.method, flask.request.path)
        return render_error(errors.LoteError("internal error"))

    register(app)
    return app


def unrouted(error: HTTPException) -> flask.Response:
    """The functions framework's own 404 (a path its catch-all route cannot match, such as one with
    an encoded newline), rendered as lote's JSON error instead of the framework's HTML page."""
    return render_error(errors.NotFound("no such route", {"path": flask.request.path[:200]}))


def dispatch(app: flask.Flask, request: flask.Request) -> flask.Response:
    """Run one request through `app`'s routing and error handling.

    The framework's own Request object is reused, so its body is read once and cached: a second
    Request over the same WSGI stream would find it consumed (functions-framework reads the body
    again after the response).
    """
    with flask.ctx.RequestContext(app, request.environ, request=request):
        return app.full_dispatch_request()
