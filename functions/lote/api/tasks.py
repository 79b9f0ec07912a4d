"""The worker's routes: Cloud Tasks deliveries and the repair sweep, OIDC-authenticated."""

from __future__ import annotations

import flask
from pydantic import BaseModel, ConfigDict

from lote import oidc
from lote.api.http import json_body, parse, respond
from lote.jobs import service as jobs
from lote.jobs import worker
from lote.services import get_services


class GenerationTask(BaseModel):
    """Body of a generation task."""

    model_config = ConfigDict(extra="forbid")
    job_id: str


def register(app: flask.Flask) -> None:
    """Attach the task handlers to the `worker` app."""

    @app.post("/tasks/generate")
    def generate() -> flask.Response:
        services = get_services()
        oidc.verify(services.settings, flask.request.headers.get("Authorization"))
        task = parse(GenerationTask, json_body(flask.request))
        retry_count = int(flask.request.headers.get("X-CloudTasks-TaskRetryCount") or 0)
        answer = worker.run(services, task.job_id, retry_count)
        return respond(answer.status, answer.body, answer.headers)

    @app.post("/tasks/sweep")
    def sweep() -> flask.Response:
        services = get_services()
        oidc.verify(services.settings, flask.request.headers.get("Authorization"))
        return respond(200, jobs.sweep(services))
