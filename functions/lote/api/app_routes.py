"""The web app's static files at /app/ (end users with a client token, partner operators with
their key): no build step, nothing fetched from a CDN at run time."""

from __future__ import annotations

from pathlib import Path

import flask

from lote.errors import NotFound

STATIC = Path(__file__).with_name("static")
FILES = {path.name for path in STATIC.iterdir() if path.suffix in {".html", ".js", ".css"}}
# The page talks to the API (maybe on another origin: `#api=`) and to signed Cloud Storage URLs.
SECURITY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src * data: blob:; connect-src *; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def register(app: flask.Flask) -> None:
    """Attach the routes to the `api` app."""

    @app.get("/app")
    def app_root() -> flask.Response:
        response = flask.Response(status=301)
        response.headers["Location"] = "/app/"
        return response

    @app.get("/app/")
    @app.get("/app/<name>")
    def app_file(name: str = "index.html") -> flask.Response:
        if name not in FILES:
            raise NotFound("no such file", {"path": flask.request.path[:200]})
        response = flask.send_from_directory(STATIC, name, max_age=0)
        response.headers.update(SECURITY)
        return response
