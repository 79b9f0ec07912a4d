"""The public API's batch and upload routes."""

from __future__ import annotations

import flask

from lote import uploads
from lote.api.http import authenticated, json_body, parse, respond, respond_cached
from lote.batches import service as batches
from lote.batches import views as batch_views
from lote.batches.schemas import BatchRequest, RetryRequest, UploadRequest
from lote.errors import InvalidRequest


def _int_arg(name: str, default: int) -> int:
    value = flask.request.args.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number", {"field": name}) from None


def register(app: flask.Flask) -> None:
    """Attach the routes to the `api` app."""

    @app.post("/v1/batches")
    def create_batch() -> flask.Response:
        services, caller = authenticated()
        payload = json_body(flask.request)
        req = parse(BatchRequest, payload)
        answer = batches.submit(services, caller, payload, req, flask.request.headers.get("Idempotency-Key"))
        return respond(answer.status, answer.body, answer.headers)

    @app.get("/v1/batches")
    def list_batches() -> flask.Response:
        services, caller = authenticated()
        args = flask.request.args
        return respond(
            200, batches.list_batches(services, caller, args.get("status"), args.get("page_token"))
        )

    @app.get("/v1/batches/<batch_id>")
    def get_batch(batch_id: str) -> flask.Response:
        services, caller = authenticated()
        view, etag, poll_after = batch_views.get(services, caller, batch_id)
        return respond_cached(view, etag, poll_after)

    @app.get("/v1/batches/<batch_id>/items")
    def batch_items(batch_id: str) -> flask.Response:
        services, caller = authenticated()
        args = flask.request.args
        page = batch_views.items(
            services, caller, batch_id, args.get("status"), _int_arg("page_size", 100), args.get("page_token")
        )
        return respond(200, page)

    @app.get("/v1/batches/<batch_id>/results.jsonl")
    def batch_results(batch_id: str) -> flask.Response:
        services, caller = authenticated()
        lines = batch_views.results(services, caller, batch_id, _int_arg("from_index", 0))
        return flask.Response(lines, mimetype="application/jsonl")

    @app.post("/v1/batches/<batch_id>/retry")
    def retry_batch(batch_id: str) -> flask.Response:
        services, caller = authenticated()
        payload = json_body(flask.request) if flask.request.get_data() else {}
        return respond(200, batches.retry(services, caller, batch_id, parse(RetryRequest, payload)))

    @app.post("/v1/batches/<batch_id>/cancel")
    def cancel_batch(batch_id: str) -> flask.Response:
        services, caller = authenticated()
        return respond(200, batches.cancel(services, caller, batch_id))

    @app.post("/v1/uploads")
    def create_upload() -> flask.Response:
        services, caller = authenticated()
        return respond(201, uploads.create(services, caller, parse(UploadRequest, json_body(flask.request))))
