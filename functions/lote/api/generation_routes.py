"""The public API's generation routes (and the presets and the OpenAPI document): each
authenticates, parses, calls one service function, renders."""

from __future__ import annotations

import flask

from lote import openapi
from lote.api import overload
from lote.api.http import applied, authenticated, json_body, parse, prefer_wait, respond, respond_cached
from lote.errors import InvalidRequest
from lote.jobs import service as jobs
from lote.jobs import views
from lote.jobs.schemas import GenerationRequest
from lote.web import current_services


def register(app: flask.Flask) -> None:
    """Attach the routes to the `api` app."""

    @app.post("/v1/generations")
    def create_generation() -> flask.Response:
        with overload.turn(current_services().settings):
            services, caller = authenticated()
            payload = json_body(flask.request)
            req = parse(GenerationRequest, payload)
            answer = jobs.submit(services, caller, payload, req, flask.request.headers.get("Idempotency-Key"))
        wait = prefer_wait(flask.request)
        final = jobs.finished_within(services, caller, answer.body["id"], wait) if wait else None
        if final is not None:
            return respond(200, final, {**answer.headers, **applied(wait)})
        return respond(answer.status, answer.body, {**answer.headers, **applied(wait)})

    @app.get("/v1/generations/<job_id>")
    def get_generation(job_id: str) -> flask.Response:
        services, caller = authenticated()
        wait, known = prefer_wait(flask.request), flask.request.if_none_match
        include = flask.request.args.get("include")
        if include not in (None, "timeline"):
            raise InvalidRequest(
                "include may only be `timeline`", {"field": "include", "allowed": ["timeline"]}
            )
        view, etag, poll_after = jobs.get(
            services, caller, job_id, wait, known.contains_weak if known else None, include == "timeline"
        )
        return respond_cached(view, etag, poll_after, applied(wait))

    @app.get("/v1/generations/<job_id>/output")
    def generation_output(job_id: str) -> flask.Response:
        services, caller = authenticated()
        response = flask.Response(status=302)
        response.headers["Location"] = jobs.output_url(services, caller, job_id)
        return response

    @app.post("/v1/generations/<job_id>/cancel")
    def cancel_generation(job_id: str) -> flask.Response:
        services, caller = authenticated()
        return respond(200, jobs.cancel(services, caller, job_id))

    @app.get("/v1/presets")
    def list_presets() -> flask.Response:
        services, _ = authenticated()
        return respond(200, views.preset_list(services.settings.default_model))

    @app.get("/v1/openapi.json")
    def openapi_document() -> flask.Response:
        return respond(200, openapi.document(current_services().settings))
