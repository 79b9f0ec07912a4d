"""The worker's routes: Cloud Tasks deliveries and the repair sweep, OIDC-authenticated."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import flask
from pydantic import BaseModel, ConfigDict

from lote import oidc, repair
from lote.answers import Answer
from lote.api.http import json_body, parse, respond
from lote.batches import fanout, item_events
from lote.jobs import worker
from lote.services import Services, get_services
from lote.webhooks import delivery

T = TypeVar("T", bound=BaseModel)


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


class SweepTask(BaseModel):
    """Body of a repair sweep call (Cloud Scheduler sends `{}`)."""

    model_config = ConfigDict(extra="forbid")


class CheckTask(BaseModel):
    """Body of a batch checker task."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str
    gen: int
    seq: int


class ItemEventsTask(BaseModel):
    """Body of a canceled batch's item-events task."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str
    completion: int
    start: int = 0


class WebhookTask(BaseModel):
    """Body of a webhook delivery task."""

    model_config = ConfigDict(extra="forbid")
    delivery_id: str
    gen: int = 0


def _handle(model: type[T], run: Callable[[Services, T], Answer]) -> flask.Response:
    """Verify the OIDC token, parse the task body, run the handler, answer the queue."""
    services = get_services()
    oidc.verify(services.settings, flask.request.headers.get("Authorization"))
    answer = run(services, parse(model, json_body(flask.request)))
    return respond(answer.status, answer.body, answer.headers)


def register(app: flask.Flask) -> None:
    """Attach the task handlers to the `worker` app."""

    @app.post("/tasks/generate")
    def generate() -> flask.Response:
        retry_count = int(flask.request.headers.get("X-CloudTasks-TaskRetryCount") or 0)
        return _handle(GenerationTask, lambda services, task: worker.run(services, task.job_id, retry_count))

    @app.post("/tasks/fanout-plan")
    def fanout_plan() -> flask.Response:
        return _handle(PlanTask, lambda services, task: fanout.plan(services, task.batch_id, task.gen))

    @app.post("/tasks/fanout-chunk")
    def fanout_chunk() -> flask.Response:
        return _handle(ChunkTask, lambda services, task: fanout.chunk(services, task.batch_id, task.chunk))

    @app.post("/tasks/batch-check")
    def batch_check() -> flask.Response:
        return _handle(
            CheckTask, lambda services, task: fanout.check(services, task.batch_id, task.gen, task.seq)
        )

    @app.post("/tasks/batch-item-events")
    def batch_item_events() -> flask.Response:
        return _handle(
            ItemEventsTask,
            lambda services, task: item_events.emit(services, task.batch_id, task.completion, task.start),
        )

    @app.post("/tasks/webhook")
    def webhook() -> flask.Response:
        retry_count = int(flask.request.headers.get("X-CloudTasks-TaskRetryCount") or 0)
        return _handle(
            WebhookTask,
            lambda services, task: delivery.deliver(services, task.delivery_id, task.gen, retry_count),
        )

    @app.post("/tasks/sweep")
    def sweep() -> flask.Response:
        return _handle(SweepTask, lambda services, _task: Answer(200, repair.sweep(services)))
