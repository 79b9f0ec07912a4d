"""One attempt at one image: claim, read inputs, call the model, store the output, record the end."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lote import images, retries, tasks, timeutil
from lote.answers import Answer
from lote.clients.model import ModelFailure, ModelPermanent, ModelThrottled, generate_image
from lote.clients.storage import ObjectTooLarge
from lote.dispatch import lanes, share, state
from lote.dispatch import service as dispatch
from lote.dispatch.state import Outcome
from lote.jobs import inputs, outputs, recovery, store
from lote.leases import ClaimKind
from lote.quality import pipeline
from lote.quality import plan as quality_plan
from lote.services import Services
from lote.statuses import JobStatus
from lote.webhooks import service as webhooks

log = logging.getLogger("lote.worker")
# A model that answers garbage this many times in a row for one job is not having a bad minute:
# fail the job (refunded) instead of retrying until the queue gives up (30 minutes with queue.yaml).
MALFORMED_LIMIT = 3
MALFORMED_CODES = frozenset({"model_bad_response"})


def error_streak(job: dict[str, Any], code: str) -> int:
    """How many attempts in a row, this one included, failed with `code`."""
    previous = (job.get("last_error") or {}).get("code")
    return int(job.get("error_streak") or 0) + 1 if previous == code else 1


def gives_up(job: dict[str, Any], code: str) -> bool:
    """Whether a retryable failure has repeated enough to be treated as permanent."""
    return code in MALFORMED_CODES and error_streak(job, code) >= MALFORMED_LIMIT


@dataclass(frozen=True)
class Verdict:
    """What a failed attempt leads to: the job's update, and the answer that tells Cloud Tasks
    whether to retry (200 ends the task; 500 and 503 retry it)."""

    update: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """Whether the job fails for good (refunded, its webhook sent)."""
        return bool(self.update["status"] == JobStatus.FAILED)


def judge(job: dict[str, Any], code: str, message: str, retryable: bool, last_attempt: bool) -> Verdict:
    """The retry rule: a permanent error, the queue's last attempt, or the same malformed answer
    MALFORMED_LIMIT times in a row fail the job; anything else puts it back in the queue.

    An input that failed to load answers a plain 500, so one partner's host does not slow every
    tenant; other transient errors answer 503. (A quota error is no failed attempt: see _hold.)
    """
    if retryable and gives_up(job, code):
        retryable, message = False, f"{message} ({MALFORMED_LIMIT} malformed answers in a row)"
    error = {"code": code, "message": message[:1000], "retryable": retryable}
    if not retryable or last_attempt:
        return Verdict({"status": JobStatus.FAILED, "error": error})
    again = {"status": JobStatus.QUEUED, "last_error": error, "error_streak": error_streak(job, code)}
    return Verdict(again, 500 if code.startswith("input_") else 503)


def is_last_attempt(services: Services, retry_count: int, job: dict[str, Any]) -> bool:
    """Whether the generation queue will not retry after this attempt fails. The queue's retry
    window runs from the current task's start: the job's creation, or the batch retry that gave
    it a new task (recovery.cycle_start)."""
    s = services.settings
    return retries.is_last_attempt(
        s.generation_max_attempts, s.generation_max_retry_s, retry_count, recovery.cycle_start(job)
    )


def _load_inputs(services: Services, job: dict[str, Any]) -> list[tuple[bytes, str]]:
    """Every input's bytes, proven to be an image."""
    loaded = []
    for uri in job.get("inputs") or []:
        if uri.startswith("gs://"):
            bucket, name = inputs.parse_gs(uri)
            try:
                data = services.storage.read(bucket, name, images.MAX_INPUT_BYTES)
            except ObjectTooLarge as exc:
                raise inputs.InputError("input_too_large", str(exc)) from None
            if data is None:
                raise inputs.InputError("input_not_found", f"{uri} does not exist")
        else:
            data = inputs.fetch(uri, inputs.FetchPolicy())
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
    attempt = int(job["attempts"])
    from google.api_core.exceptions import GoogleAPICallError
    from requests import RequestException

    try:
        loaded = _load_inputs(services, job)
    except inputs.InputError as exc:
        return _failed(services, job_id, attempt, retry_count, job, exc.code, exc.message, exc.retryable)
    except (GoogleAPICallError, RequestException) as exc:
        return _storage_failed(services, job_id, attempt, retry_count, job, exc)
    call = ModelCall(services, job_id, job, attempt, retry_count > 0, began)
    try:
        plan = quality_plan.plan_of(job)
        if pipeline.uses_pipeline(plan):
            done = pipeline.run(services, job_id, job, plan, attempt, loaded)
        else:
            image = generate_image(
                services.model, job["model"], job["prompt"], loaded, job.get("aspect_ratio")
            )
            output, created = outputs.store(services, job_id, job, image.data)
            done = pipeline.Result(output, None, image.usage, image.elapsed_ms, created)
    except pipeline.Stopped as exc:
        if exc.reason == "stale":
            return Answer(200, {"result": "noop", "reason": "another attempt took the job over"})
        with webhooks.events(services) as outbox:  # a cancel was requested: this ends the job canceled
            written = store.finish(db, job_id, attempt, {"status": JobStatus.CANCELED}, outbox)
        return Answer(200, {"result": written})
    except ModelThrottled as exc:
        return _hold(services, job_id, attempt, job, call.staged(Outcome.QUOTA), exc.code, exc.message)
    except ModelFailure as exc:
        retryable = not isinstance(exc, ModelPermanent)
        outcome = Outcome.FAILURE if retryable else Outcome.SUCCESS  # a refusal is the model working
        opened = state.breaker_opened_at(db, call.pool) if retryable else None
        if opened is not None and recovery.cycle_start(job) < opened:
            # Released before the model went down for everyone: wait held, spending neither attempts
            # nor retry window. Work released since is a probe, and its failures count as usual.
            return _hold(services, job_id, attempt, job, call.staged(outcome), exc.code, exc.message)
        return _failed(services, job_id, attempt, retry_count, job, exc.code, exc.message, retryable,
                       also=call.staged(outcome))  # fmt: skip
    except (GoogleAPICallError, RequestException) as exc:
        return _storage_failed(services, job_id, attempt, retry_count, job, exc, call.staged(Outcome.SUCCESS))
    update = {"status": JobStatus.SUCCEEDED, "output": done.output, "error": None, "model_ms": done.model_ms,
              "usage": done.usage}  # fmt: skip
    if done.quality is not None:
        update["quality"] = done.quality
    with webhooks.events(services) as outbox:
        written = store.finish(
            db, job_id, attempt, update, outbox, call.staged(Outcome.SUCCESS, produced=True)
        )
    if written == JobStatus.CANCELED and done.created:
        services.storage.delete(done.output["bucket"], done.output["object"])
    log.info("job %s attempt %d: %s (%d ms model)", job_id, attempt, written, done.model_ms)
    return Answer(200, {"result": written})


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

    @property
    def pool(self) -> str:
        """The quota this call drew on."""
        return dispatch.pool(self.services.settings)

    def staged(self, outcome: Outcome, produced: bool = False) -> Also:
        """What store.finish stages along with the attempt's end: the call's outcome on the job, and
        the attempt's duration when it `produced` an image."""
        took = round((time.monotonic() - self.began) * 1000) if produced else None
        fields = state.call_fields(
            self.pool, outcome, str(share.tier_of(self.job)), self.retry, timeutil.now(), took
        )
        return lambda _tx, written: written.update(call=fields)


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

    def also(tx: Any, written: dict[str, Any]) -> None:
        record(tx, written)
        if written["status"] == JobStatus.QUEUED:
            lanes.activate(db, lane, lane_doc, tx)

    with webhooks.events(services) as outbox:  # a cancel requested meanwhile ends the job here
        outcome = store.finish(db, job_id, attempt, update, outbox, also)
    if outcome == JobStatus.QUEUED:
        dispatch.ensure_running(services, pool)
    log.info("job %s attempt %d held again (%s): %s", job_id, attempt, code, outcome)
    return Answer(200, {"result": "held" if outcome == JobStatus.QUEUED else outcome, "code": code})


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
    last = is_last_attempt(services, retry_count, job)
    verdict = judge(job, code, message, retryable, last)
    error = verdict.update.get("error") or verdict.update["last_error"]
    with webhooks.events(services) as outbox:  # a cancel requested meanwhile ends the job here
        outcome = store.finish(services.firestore.db, job_id, attempt, verdict.update, outbox, also)
    if verdict.final:
        log.warning("job %s attempt %d failed for good: %s (%s)", job_id, attempt, code, outcome)
        return Answer(200, {"result": outcome, "error": error})
    log.info("job %s attempt %d will be retried: %s", job_id, attempt, code)
    return Answer(verdict.status, {"result": "retry", "error": error}, verdict.headers)
