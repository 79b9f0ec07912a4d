"""The worker's routes: Cloud Tasks deliveries and the repair sweep, OIDC-authenticated."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import flask

from lote import logs, oidc, repair
from lote.answers import Answer
from lote.api.http import json_body, parse, respond
from lote.batches import cancel, fanout, item_events
from lote.batches import retry as batch_retry_pages
from lote.batchmode import service as batch_mode
from lote.billing import reconcile
from lote.dispatch import lanes
from lote.dispatch import service as dispatch
from lote.jobs import worker
from lote.services import Services
from lote.tasks import (
    CancelItems,
    CheckBatch,
    DeliverWebhook,
    Dispatch,
    EmitItemEvents,
    FanoutChunk,
    Generate,
    Payload,
    PlanFanout,
    PollModelBatch,
    Reconcile,
    RefreshBatch,
    RetryItems,
    SubmitModelBatch,
    Sweep,
)
from lote.web import current_services
from lote.webhooks import delivery

T = TypeVar("T", bound=Payload)


def _handle(model: type[T], run: Callable[[Services, T], Answer]) -> flask.Response:
    """Verify the OIDC token, parse the task body, run the handler, answer the queue."""
    services = current_services()
    oidc.verify(services.settings, flask.request.headers.get("Authorization"))
    task = parse(model, json_body(flask.request))
    # Cloud Tasks names the task it delivers: every line of the handler carries it.
    name = flask.request.headers.get("X-CloudTasks-TaskName") or model.__name__
    with logs.bound(task=name, batch_id=getattr(task, "batch_id", None)):
        answer = run(services, task)
    return respond(answer.status, answer.body, answer.headers)


def register(app: flask.Flask) -> None:
    """Attach the task handlers to the `worker` app."""

    @app.post(Generate.route)
    def generate() -> flask.Response:
        retry_count = int(flask.request.headers.get("X-CloudTasks-TaskRetryCount") or 0)
        return _handle(Generate, lambda services, task: worker.run(services, task.job_id, retry_count))

    @app.post(PlanFanout.route)
    def fanout_plan() -> flask.Response:
        return _handle(PlanFanout, lambda services, task: fanout.plan(services, task.batch_id, task.gen))

    @app.post(FanoutChunk.route)
    def fanout_chunk() -> flask.Response:
        return _handle(FanoutChunk, lambda services, task: fanout.chunk(services, task.batch_id, task.chunk))

    @app.post(CheckBatch.route)
    def batch_check() -> flask.Response:
        return _handle(
            CheckBatch, lambda services, task: fanout.check(services, task.batch_id, task.gen, task.seq)
        )

    @app.post(CancelItems.route)
    def batch_cancel() -> flask.Response:
        return _handle(
            CancelItems, lambda services, task: cancel.run(services, task.batch_id, task.start, task.seq)
        )

    @app.post(RetryItems.route)
    def batch_retry() -> flask.Response:
        return _handle(
            RetryItems,
            lambda services, task: batch_retry_pages.run(
                services, task.batch_id, task.gen, task.start, task.seq
            ),
        )

    @app.post(RefreshBatch.route)
    def batch_refresh() -> flask.Response:
        return _handle(RefreshBatch, lambda services, task: fanout.refresh(services, task.batch_id))

    @app.post(EmitItemEvents.route)
    def batch_item_events() -> flask.Response:
        return _handle(
            EmitItemEvents,
            lambda services, task: item_events.emit(services, task.batch_id, task.completion, task.start),
        )

    @app.post(DeliverWebhook.route)
    def webhook() -> flask.Response:
        retry_count = int(flask.request.headers.get("X-CloudTasks-TaskRetryCount") or 0)
        return _handle(
            DeliverWebhook,
            lambda services, task: delivery.deliver(services, task.delivery_id, task.gen, retry_count),
        )

    @app.post(Dispatch.route)
    def dispatch_tick() -> flask.Response:
        # Batch mode's pool is ticked like an online one, by its gatherer instead of a dispatcher.
        return _handle(Dispatch, lambda services, task: (
            batch_mode.tick(services, task.window) if task.pool == lanes.BATCH_MODE
            else dispatch.tick(services, task.pool, task.window)
        ))  # fmt: skip

    @app.post(SubmitModelBatch.route)
    def model_batch_submit() -> flask.Response:
        return _handle(
            SubmitModelBatch, lambda services, task: batch_mode.submit(services, task.mb, task.gen)
        )

    @app.post(PollModelBatch.route)
    def model_batch_poll() -> flask.Response:
        return _handle(PollModelBatch, lambda services, task: batch_mode.poll(services, task.mb, task.seq))

    @app.post(Sweep.route)
    def sweep() -> flask.Response:
        return _handle(Sweep, lambda services, _task: Answer(200, repair.sweep(services)))

    @app.post(Reconcile.route)
    def stripe_reconcile() -> flask.Response:
        return _handle(Reconcile, lambda services, _task: Answer(200, reconcile.reconcile(services)))
