"""CORS for browsers: preflights answered on every route, and every answer readable by the page
that asked. Who may act is decided by the credential, not here: an API key from another site's
page is refused (403 `secret_key_in_browser`), a client token only works from its tenant's allowed
origins (403 `origin_not_allowed`). No cookies are used, so no credentials mode is offered."""

from __future__ import annotations

import flask

METHODS = "GET, POST, PATCH, OPTIONS"
HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match, Prefer"
EXPOSED = ", ".join((
    # Date: a page reads `eta` against the server's clock, not its device's.
    "ETag", "Retry-After", "Location", "Idempotency-Replayed", "Preference-Applied", "Date",
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
))  # fmt: skip
MAX_AGE_S = 600


def register(app: flask.Flask) -> None:
    """Answer preflights before routing (so every path has one) and label every answer."""

    @app.before_request
    def preflight() -> flask.Response | None:
        request = flask.request
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = flask.Response(status=204)
        response.headers.update({
            "Access-Control-Allow-Methods": METHODS,
            "Access-Control-Allow-Headers": HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_S),
        })  # fmt: skip
        return response

    @app.after_request
    def label(response: flask.Response) -> flask.Response:
        origin = flask.request.headers.get("Origin")
        if origin:
            # The origin is echoed (never `*`, never with credentials): errors such as
            # origin_not_allowed must be readable by the page to be shown in words.
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED
        response.vary.add("Origin")
        return response
