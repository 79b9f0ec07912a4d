"""One attempt at one image: claim, read inputs, call the model, store the output, record the end."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lote import images, tasks, timeutil
from lote.answers import Answer
from lote.clients.model import (
    DEFAULT_RETRY_AFTER_S,
    IMAGE,
    TEXT,
    ModelFailure,
    ModelOperatorTrouble,
    ModelPermanent,
    ModelThrottled,
    generate_image,
)
from lote.clients.storage import ObjectTooLarge
from lote.dispatch import lanes, share, spend, state
from lote.dispatch import service as dispatch
from lote.dispatch.state import Outcome
from lote.jobs import attempts, inputs, memory, outputs, recovery, store
from lote.jobs import service as jobs
from lote.leases import ClaimKind
from lote.quality import pipeline
from lote.quality import plan as quality_plan
from lote.services import Services
from lote.statuses import JobStatus
from lote.webhooks import service as webhooks

log = logging.getLogger("lote.worker")


def _load_inputs(services: Services, job: dict[str, Any], held: memory.Hold) -> list[tuple[bytes, str]]:
    """Every input's bytes, proven to be an image; what each did not need of the attempt's memory
    reservation is given back as soon as it is read."""
    loaded = []
    for uri in job.get("inputs") or []:
        if uri.startswith("gs://"):
            bucket, name = inputs.parse_gs(uri)
            try:
                data = services.storage.read(bucket, name, images.MAX_INPUT_BYTES, held.input)
            except ObjectTooLarge as exc:
                raise inputs.InputError("input_too_large", str(exc)) from None
            if data is None:
                raise inputs.InputError("input_not_found", f"{uri} does not exist")
        else:
            data = inputs.fetch(uri, inputs.FetchPolicy(), held.input)
        info = inputs.inspect_input(data, uri)
        loaded.append((data, info.mime_type))
    return loaded


def run(services: Services, job_id: str, retry_count: int) -> Answer:
    """Handle one delivery of a generation task; the Answer tells Cloud Tasks what to do next."""
    db = services.firestore.db
    lease = dt.timedelta(seconds=services.settings.task_dispatch_deadline_s)
    claim = store.claim(db, job_id, lease, tasks.check_at(services, tasks.Generate))
    if claim.kind is ClaimKind.NOOP:
        return Answer(200, {"result": "noop", "reason": claim.reason})
    if claim.kind is ClaimKind.BUSY:
        return Answer(
            429, {"result": "busy", "reason": claim.reason}, {"Retry-After": str(claim.retry_after)}
        )
    job, began = claim.doc, time.monotonic()
    s = services.settings
    # Waiting must leave the lease room for a model call (the attempt's first step always runs).
    wait_s = max(0.0, min(s.worker_memory_wait_s, s.task_dispatch_deadline_s - s.model_timeout_s - 5))
    try:
        limit, count = s.worker_memory_budget_mb * 1024 * 1024, len(job.get("inputs") or [])
        with memory.hold(limit, count, wait_s) as held:
            return _attempt(services, job_id, job, retry_count, began, held)
    except memory.MemoryBusy as exc:
        # Nothing was called: the dispatcher's measures must not count this attempt.
        log.info("job %s: %s", job_id, exc.message)
        return _defer(services, job_id, int(job["attempts"]), job, lambda _b, _w: None, None, 1.0)


def _attempt(
    services: Services, job_id: str, job: dict[str, Any], retry_count: int, began: float, held: memory.Hold
) -> Answer:
    """The claimed attempt: its inputs, the image (through the pipeline), and how it ended."""
    from google.api_core.exceptions import GoogleAPICallError
    from requests import RequestException

    db, attempt = services.firestore.db, int(job["attempts"])
    try:
        loaded = _load_inputs(services, job, held)
    except inputs.InputError as exc:
        return _failed(services, job_id, attempt, retry_count, job, exc.code, exc.message, exc.retryable)
    except (GoogleAPICallError, RequestException) as exc:
        return _storage_failed(services, job_id, attempt, retry_count, job, exc)
    # A retry for the breaker: the queue retrying the task, or a job whose earlier attempt failed
    # (a sweep's restart or a batch retry starts a new task at retry count 0; counted as first calls,
    # a handful of jobs that fail alone once opened the breaker for every tenant).
    retried = retry_count > 0 or job.get("last_error") is not None
    call = ModelCall(services, job_id, job, attempt, retried, began)
    s = services.settings
    ends = lambda exc: _ends_job(services, retry_count, job, exc)  # noqa: E731
    steps = pipeline.Attempt(attempt, began, s.task_dispatch_deadline_s, s.model_timeout_s, ends)
    try:
        done = _generate(services, job_id, job, steps, loaded)
    except pipeline.Stopped as exc:
        if exc.reason == "stale":
            return Answer(200, {"result": "noop", "reason": "another attempt took the job over"})
        with webhooks.events(services) as outbox:  # a cancel was requested: this ends the job canceled
            written = store.finish(db, job_id, attempt, {"status": JobStatus.CANCELED}, outbox)
        return Answer(200, {"result": written})
    except pipeline.OutOfTime as exc:
        record = call.staged(Outcome.SUCCESS, IMAGE if exc.image_calls else TEXT)
        return _defer(services, job_id, attempt, job, record, None, 0.0)
    except ModelFailure as exc:
        return _model_failed(call, retry_count, exc)
    except (GoogleAPICallError, RequestException) as exc:
        return _storage_failed(services, job_id, attempt, retry_count, job, exc, call.staged(Outcome.SUCCESS))
    update = {"status": JobStatus.SUCCEEDED, "output": done.output, "error": None, "model_ms": done.model_ms,
              "usage": done.usage}  # fmt: skip
    if done.quality is not None:
        update["quality"] = done.quality
    made = IMAGE if done.image_calls else TEXT  # a resumed attempt may have called the verifier alone
    with webhooks.events(services) as outbox:
        staged = call.staged(Outcome.SUCCESS, made, True, usage=done.usage)
        written = store.finish(db, job_id, attempt, update, outbox, staged)
    if written == JobStatus.CANCELED and done.created:
        services.storage.delete(done.output["bucket"], done.output["object"])
    log.info("job %s attempt %d: %s (%d ms model)", job_id, attempt, written, done.model_ms)
    return Answer(200, {"result": written})


def _generate(
    services: Services,
    job_id: str,
    job: dict[str, Any],
    steps: pipeline.Attempt,
    loaded: list[tuple[bytes, str]],
) -> pipeline.Result:
    """The image: through the quality pipeline when the job's plan has more than one generation."""
    plan = quality_plan.plan_of(job)
    if pipeline.uses_pipeline(plan):
        return pipeline.run(services, job_id, job, plan, steps, loaded)
    image = generate_image(services.model, job["model"], job["prompt"], loaded, job.get("aspect_ratio"))
    output, created = outputs.store(services, job_id, job, image.data)
    return pipeline.Result(output, None, image.usage, image.elapsed_ms, created)


def _model_failed(call: ModelCall, retry_count: int, exc: ModelFailure) -> Answer:
    """A model call that ended the attempt. An image quota error holds the job again; a text quota
    error defers it by its RetryInfo delay (the image pace untouched); other failures are judged."""
    services, job_id, job, attempt = call.services, call.job_id, call.job, call.attempt
    if isinstance(exc, ModelOperatorTrouble):
        # The deployment cannot use the model (a key, billing, the day's quota): no attempt spent,
        # nothing refunded; the dispatcher's breaker blocks the pool until a probe gets through.
        record = call.staged(Outcome.BLOCKED, exc.kind, reason=exc.code)
        if exc.kind == IMAGE:
            return _hold(services, job_id, attempt, job, record, exc.code, exc.message)
        error = {"code": exc.code, "message": exc.message[:1000], "retryable": True}
        return _defer(services, job_id, attempt, job, record, error, DEFER_CAP_S)
    if isinstance(exc, ModelThrottled):
        if exc.kind == IMAGE:
            return _hold(services, job_id, attempt, job, call.staged(Outcome.QUOTA), exc.code, exc.message)
        error = {"code": exc.code, "message": exc.message[:1000], "retryable": True}
        record = call.staged(Outcome.QUOTA, TEXT)
        delay = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_RETRY_AFTER_S
        return _defer(services, job_id, attempt, job, record, error, delay)
    retryable = not isinstance(exc, ModelPermanent)
    outcome = Outcome.FAILURE if retryable else Outcome.SUCCESS  # a refusal is the model working
    db = services.firestore.db
    opened = state.breaker_opened_at(db, call.pool(IMAGE)) if retryable and exc.kind == IMAGE else None
    if opened is not None and recovery.breaker_start(job) < opened:
        # Released before the model went down for everyone: wait held, spending neither attempts
        # nor retry window. Work released since is a probe, and its failures count as usual.
        return _hold(services, job_id, attempt, job, call.staged(outcome), exc.code, exc.message)
    return _failed(services, job_id, attempt, retry_count, job, exc.code, exc.message, retryable,
                   also=call.staged(outcome, exc.kind))  # fmt: skip


def _ends_job(services: Services, retry_count: int, job: dict[str, Any], exc: ModelFailure) -> bool:
    """Whether this failure would fail the job for good (judged as _failed would judge it)."""
    last = attempts.is_last_attempt(services, retry_count, job)
    return attempts.judge(job, exc.code, exc.message, not isinstance(exc, ModelPermanent), last).final


Also = Callable[[Any, dict[str, Any]], None]


@dataclass(frozen=True)
class ModelCall:
    """One model call of an attempt, recorded with the attempt's outcome for the dispatcher."""

    services: Services
    job_id: str
    job: dict[str, Any]
    attempt: int
    retry: bool  # the queue is retrying this task after a failed call
    began: float  # time.monotonic() when the attempt claimed the job

    def pool(self, kind: str) -> str:
        """The quota a call of `kind` (image or text) drew on."""
        s = self.services.settings
        return dispatch.pool(s) if kind == IMAGE else dispatch.text_pool(s)

    def staged(
        self,
        outcome: Outcome,
        kind: str = IMAGE,
        produced: bool = False,
        reason: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> Also:
        """What store.finish stages along with the attempt's end: the outcome of its last call of
        `kind` on the job (`reason`: a blocked call's code), and the attempt's duration when it
        `produced` an image; `usage`: a finished job's, recorded as tokens by model for the spend)."""
        took = round((time.monotonic() - self.began) * 1000) if produced and kind == IMAGE else None
        fields = state.call_fields(
            self.pool(kind),
            outcome,
            str(share.tier_of(self.job)),
            self.retry,
            timeutil.now(),
            took,
            reason,
            spend.by_model(str(self.job.get("model")), usage) if usage else None,
        )
        return lambda _batch, written: written.update(call=fields)


def _storage_failed(
    services: Services,
    job_id: str,
    attempt: int,
    retry_count: int,
    job: dict[str, Any],
    exc: Exception,
    also: Also | None = None,
) -> Answer:
    # Cloud Storage trouble: release the lease so the retry is not refused as busy.
    message = f"{type(exc).__name__}: {exc}"
    return _failed(
        services, job_id, attempt, retry_count, job, "storage_unavailable", message, True, also=also
    )


def _hold(
    services: Services, job_id: str, attempt: int, job: dict[str, Any], record: Also, code: str, message: str
) -> Answer:
    """Put the job back among held work, this attempt not counted: a quota error (the pace was
    above the model's capacity) or a failure while the breaker is open. The task ends (200), so
    Cloud Tasks applies no backoff to the whole queue; the dispatcher releases the job again, first
    in its lane, with a new task."""
    db = services.firestore.db
    batch_id = job.get("batch_id")
    lane = lanes.lane_of(job)
    pool = dispatch.pool(services.settings)
    lane_doc = lanes.document(pool, job["tenant_id"], share.tier_of(job), batch_id)
    update = {
        "status": JobStatus.QUEUED, **lanes.hold_fields(lane, lanes.REHELD_RANK), "attempts": attempt - 1,
        "task_gen": int(job.get("task_gen") or 0) + 1,
        "last_error": {"code": code, "message": message[:1000], "retryable": True},
    }  # fmt: skip

    def also(batch: Any, written: dict[str, Any]) -> None:
        record(batch, written)
        if written["status"] == JobStatus.QUEUED:
            lanes.activate(db, lane, lane_doc, batch)

    with webhooks.events(services) as outbox:  # a cancel requested meanwhile ends the job here
        outcome = store.finish(db, job_id, attempt, update, outbox, also)
    if outcome == JobStatus.QUEUED:
        dispatch.ensure_running(services, pool)
    log.info("job %s attempt %d held again (%s): %s", job_id, attempt, code, outcome)
    return Answer(200, {"result": "held" if outcome == JobStatus.QUEUED else outcome, "code": code})


# A text model's RetryInfo may ask for long waits: a deferred job comes back after at most this.
DEFER_CAP_S = 60.0


def _defer(
    services: Services,
    job_id: str,
    attempt: int,
    job: dict[str, Any],
    record: Also,
    error: dict[str, Any] | None,
    delay_s: float,
) -> Answer:
    """Go on in a new task `{job}-{gen+1}` about `delay_s` from now, this attempt not counted: the
    lease had no room for the pipeline's next step, or the text model's quota asked to wait. Not
    held in a lane: the image pool's pace does not govern text calls. The task is created after the
    commit; if that fails the job is left unflagged and the repair sweep creates the same task."""
    gen = int(job.get("task_gen") or 0) + 1
    update: dict[str, Any] = {"status": JobStatus.QUEUED, "attempts": attempt - 1, "task_gen": gen,
                              "enqueued": False, "released_at": timeutil.now()}  # fmt: skip
    if error is not None:
        update["last_error"] = error
    with webhooks.events(services) as outbox:  # a cancel requested meanwhile ends the job here
        outcome = store.finish(services.firestore.db, job_id, attempt, update, outbox, record)
    if outcome == JobStatus.QUEUED:
        # Jitter spreads the jobs one quota error deferred, so they do not all come back at once.
        jitter = random.uniform(1.0, 1.5)  # noqa: S311 (spreading load, not a secret)
        jobs.enqueue(services, job_id, gen, min(delay_s, DEFER_CAP_S) * jitter)
    reason = error["code"] if error else "out_of_time"
    log.info("job %s attempt %d deferred to task %d (%s): %s", job_id, attempt, gen, reason, outcome)
    return Answer(200, {"result": "deferred" if outcome == JobStatus.QUEUED else outcome, "code": reason})


def _failed(
    services: Services,
    job_id: str,
    attempt: int,
    retry_count: int,
    job: dict[str, Any],
    code: str,
    message: str,
    retryable: bool,
    also: Also | None = None,
) -> Answer:
    """Record a failed attempt as judge() rules: failed for good (200), or back to queued."""
    last = attempts.is_last_attempt(services, retry_count, job)
    verdict = attempts.judge(job, code, message, retryable, last)
    error = verdict.update.get("error") or verdict.update["last_error"]
    with webhooks.events(services) as outbox:  # a cancel requested meanwhile ends the job here
        outcome = store.finish(services.firestore.db, job_id, attempt, verdict.update, outbox, also)
    if verdict.final:
        log.warning("job %s attempt %d failed for good: %s (%s)", job_id, attempt, code, outcome)
        return Answer(200, {"result": outcome, "error": error})
    log.info("job %s attempt %d will be retried: %s", job_id, attempt, code)
    return Answer(verdict.status, {"result": "retry", "error": error}, verdict.headers)
