"""The worker's routes: Cloud Tasks deliveries and the repair sweep, OIDC-authenticated."""

from __future__ import annotations

import flask
from pydantic import BaseModel, ConfigDict

from lote import oidc, repair
from lote.api.http import json_body, parse, respond
from lote.batches import fanout
from lote.jobs import worker
from lote.services import get_services


class GenerationTask(BaseModel):
    """Body of a generation task."""

    model_config = ConfigDict(extra="forbid")
    job_id: str


class PlanTask(BaseModel):
    """Body of a batch's fan-out plan task."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str
    gen: int = 0


class ChunkTask(BaseModel):
    """Body of a fan-out chunk task."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str
    chunk: int


class CheckTask(BaseModel):
    """Body of a batch checker task."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str
    gen: int
    seq: int


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

    @app.post("/tasks/fanout-plan")
    def fanout_plan() -> flask.Response:
        services = get_services()
        oidc.verify(services.settings, flask.request.headers.get("Authorization"))
        task = parse(PlanTask, json_body(flask.request))
        answer = fanout.plan(services, task.batch_id, task.gen)
        return respond(answer.status, answer.body, answer.headers)

    @app.post("/tasks/fanout-chunk")
    def fanout_chunk() -> flask.Response:
        services = get_services()
        oidc.verify(services.settings, flask.request.headers.get("Authorization"))
        task = parse(ChunkTask, json_body(flask.request))
        answer = fanout.chunk(services, task.batch_id, task.chunk)
        return respond(answer.status, answer.body, answer.headers)

    @app.post("/tasks/batch-check")
    def batch_check() -> flask.Response:
        services = get_services()
        oidc.verify(services.settings, flask.request.headers.get("Authorization"))
        task = parse(CheckTask, json_body(flask.request))
        answer = fanout.check(services, task.batch_id, task.gen, task.seq)
        return respond(answer.status, answer.body, answer.headers)

    @app.post("/tasks/sweep")
    def sweep() -> flask.Response:
        services = get_services()
        oidc.verify(services.settings, flask.request.headers.get("Authorization"))
        return respond(200, repair.sweep(services))
