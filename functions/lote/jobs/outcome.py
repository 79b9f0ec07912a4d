"""How an attempt at a job ends, as one value. Pure: no I/O and no clock of its own.

The worker claims a job, runs its attempt, and turns what happened into an `Outcome`: `succeeded`
for an image delivered, `of_error` for every way an attempt stops short (each exception class has
one rule below). The job's store commits any outcome in one place (store.settle: the optimistic
commit, a requested cancel winning over the outcome, a terminal state's refund and webhook event),
and the worker then does what the commit made due (`Outcome.task`, `wake`, `created`) and answers
Cloud Tasks with `Outcome.answer`.

An attempt ends in one of these:

| end       | the job               | the attempt | the task                         |
|-----------|-----------------------|-------------|----------------------------------|
| succeeded | succeeded, its output | counted     | done (200)                       |
| failed    | failed (refunded)     | counted     | done (200)                       |
| retry     | queued, `last_error`  | counted     | retried by the queue (500, 503)  |
| held      | queued, held in lane  | not counted | done; the dispatcher releases it |
| deferred  | queued                | not counted | done; a new task later           |
| canceled  | canceled (refunded)   | counted     | done                             |
| noop      | untouched (stale)     | -           | done                             |
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, cast

from lote.answers import Answer
from lote.clients.model import (
    DEFAULT_RETRY_AFTER_S,
    IMAGE,
    TEXT,
    ModelFailure,
    ModelOperatorTrouble,
    ModelPermanent,
    ModelThrottled,
)
from lote.dispatch import lanes, share, spend, state
from lote.dispatch.state import Outcome as CallOutcome
from lote.jobs import attempts, inputs, memory, recovery
from lote.jobs.documents import CallRecord, JobDoc, JobError, JobOutput
from lote.jobs.pipeline import OutOfTime, Result, Stopped
from lote.statuses import JobStatus

# A text model's RetryInfo may ask for long waits: a deferred job comes back after at most this.
DEFER_CAP_S = 60.0
# A worker whose memory budget stayed full tries the job again this soon.
MEMORY_RETRY_S = 1.0


class End(StrEnum):
    """How the attempt ended (the table in this module's docstring)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    HELD = "held"
    DEFERRED = "deferred"
    CANCELED = "canceled"
    NOOP = "noop"


@dataclass(frozen=True)
class Attempt:
    """What an outcome is computed from besides what happened: the claimed job, the attempt's place
    in the queue's retries, and the facts of the moment (read by the worker, passed in as values)."""

    job: JobDoc
    number: int  # the job's `attempts` after the claim
    last: bool  # the queue will not retry the task after this attempt
    retried: bool  # a retry for the breaker: the task retried, or the job failed before
    now: dt.datetime
    took_ms: int  # claim to now
    image_pool: str
    text_pool: str
    breaker_opened_at: dt.datetime | None = None  # the image pool's breaker, when open (asks_breaker)
    jitter: float = 1.0  # spreads the deferred jobs of one quota error (1.0-1.5)
    online_pool: str | None = None  # the online image pool, when image_pool is batch mode's

    def pool(self, kind: str) -> str:
        """The quota a call of `kind` (image or text) drew on."""
        return self.image_pool if kind == IMAGE else self.text_pool

    def call(
        self,
        outcome: CallOutcome,
        kind: str = IMAGE,
        produced: bool = False,
        reason: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> CallRecord:
        """The `call` the job records for the dispatcher: its last model call's outcome, the
        attempt's duration when it `produced` an image, a blocked call's `reason`, and a finished
        job's tokens by model (`usage`, for the spend)."""
        took = self.took_ms if produced and kind == IMAGE else None
        tokens = spend.by_model(str(self.job.get("model")), usage) if usage else None
        tier = str(share.tier_of(self.job))
        fields = state.call_fields(
            self.pool(kind), outcome, tier, self.retried, self.now, took, reason, tokens
        )
        return cast(CallRecord, fields)


@dataclass(frozen=True)
class Outcome:
    """One attempt's end: the job's update (its `call` record included), and what the commit makes
    due when it writes the job back queued (a lane to activate in the same commit, a task to create
    and the dispatcher to wake after it), or when a cancel wins (the created output to delete)."""

    end: End
    update: JobDoc = field(default_factory=lambda: JobDoc())
    code: str | None = None  # the error's, for the answer and the log
    lane: tuple[str, dict[str, Any]] | None = None  # (lane id, its fields): held work's lane
    task: tuple[int, float] | None = None  # (task generation, delay in seconds): deferred work's task
    wake: str | None = None  # the pool whose dispatcher must run: held work's
    created: JobOutput | None = None  # the output this attempt stored
    fingerprint: str | None = None  # the reuse record this attempt made the image for (reuse/)
    status: int = 200  # what Cloud Tasks is told when the job is not written terminal by a cancel
    headers: dict[str, str] = field(default_factory=dict)

    def answer(self, written: str) -> Answer:
        """The answer to the task, given the status the commit wrote (`canceled` when a cancel
        won, `stale` when another attempt had taken the job over)."""
        if self.end is End.NOOP:
            return Answer(200, {"result": "noop", "reason": "another attempt took the job over"})
        if self.end in (End.HELD, End.DEFERRED):
            result = str(self.end) if written == JobStatus.QUEUED else written
            return Answer(200, {"result": result, "code": self.code})
        if self.end in (End.FAILED, End.RETRY):
            error = self.update.get("error") or self.update.get("last_error")
            if self.end is End.FAILED:
                return Answer(200, {"result": written, "error": error})
            return Answer(self.status, {"result": "retry", "error": error}, self.headers)
        return Answer(200, {"result": written})


def succeeded(attempt: Attempt, done: Result) -> Outcome:
    """The image delivered (through every step its plan asks for)."""
    # A resumed attempt may have called the verifier alone: its last call was a text call.
    kind = IMAGE if done.image_calls else TEXT
    update: JobDoc = {
        "status": JobStatus.SUCCEEDED, "output": done.output, "error": None, "model_ms": done.model_ms,
        "usage": done.usage, "call": attempt.call(CallOutcome.SUCCESS, kind, True, usage=done.usage),
    }  # fmt: skip
    if done.quality is not None:
        update["quality"] = done.quality
    return Outcome(End.SUCCEEDED, update, created=done.output if done.created else None)


def reused(
    attempt: Attempt,
    source: str,
    output: JobOutput,
    quality: dict[str, Any] | None,
    discount: int,
    created: bool,
) -> Outcome:
    """An identical request's image (`source`'s), copied under this job's name and delivered without a
    model call: no `call` record (the dispatcher counts none), `discount` credits given back
    (pricing.json `reuse_percent`)."""
    update: JobDoc = {
        "status": JobStatus.SUCCEEDED, "output": output, "error": None, "model_ms": 0, "usage": {},
        "reused_from": source, "discount": discount, "waits_on": None,
    }  # fmt: skip
    if quality is not None:
        update["quality"] = quality
    return Outcome(End.SUCCEEDED, update, created=output if created else None)


def waiting(attempt: Attempt, fingerprint: str, owner: str | None, delay_s: float) -> Outcome:
    """An identical request is being made by `owner` (None: its record was too busy to read): look
    again in a new task about `delay_s` from now, this attempt not counted, with the fingerprint
    kept (the next look reads no input) and `waits_on` set (the dispatcher does not count it as work
    ahead in the queue)."""
    ended = deferred(attempt, "reuse_wait", delay_s, None)
    waits_on = owner or "?"
    return replace(ended, update={**ended.update, "fingerprint": fingerprint, "waits_on": waits_on})


def failed(
    attempt: Attempt, code: str, message: str, retryable: bool, call: CallRecord | None = None
) -> Outcome:
    """A failed attempt, as the retry rule judges it: failed for good, or queued for the queue's
    retry (the answer tells Cloud Tasks how: attempts.judge)."""
    verdict = attempts.judge(attempt.job, code, message, retryable, attempt.last)
    update: JobDoc = {**verdict.update}
    if call is not None:
        update["call"] = call
    end = End.FAILED if verdict.final else End.RETRY
    return Outcome(end, update, code, status=verdict.status, headers=verdict.headers)


def held(attempt: Attempt, code: str, message: str, call: CallRecord | None, online: bool = False) -> Outcome:
    """Back among held work, this attempt not counted: a quota error (the pace was above the model's
    capacity), the model unusable for the deployment, or a failure while the breaker is open. The
    task ends (200), so Cloud Tasks applies no backoff to the whole queue; the dispatcher releases
    the job again, first in its lane, with a new task. `online`: a job of a model batch job sent
    back to online dispatch (its line missing or not final, its batch job ended otherwise)."""
    job: JobDoc = {**attempt.job, "path": "online"} if online else attempt.job
    lane, pool = lanes.lane_of(job), lanes.pool_of(job, attempt.online_pool or attempt.image_pool)
    tier = share.tier_of(job)
    error: JobError = {"code": code, "message": message[:1000], "retryable": True}
    gen = int(job.get("task_gen") or 0) + 1
    update: JobDoc = {"status": JobStatus.QUEUED, "attempts": attempt.number - 1, "task_gen": gen,
                      "last_error": error}  # fmt: skip
    if call is not None:
        update["call"] = call
    if online:
        update["path"], update["model_batch"] = "online", None
    update.update(cast(JobDoc, lanes.hold_fields(lane, lanes.REHELD_RANK)))
    fields = lanes.document(pool, job["tenant_id"], tier, job.get("batch_id"), attempt.now)
    return Outcome(End.HELD, update, code, lane=(lane, fields), wake=pool)


def deferred(
    attempt: Attempt,
    code: str,
    delay_s: float,
    call: CallRecord | None,
    error: JobError | None = None,
) -> Outcome:
    """Go on in a new task `{job}-{gen+1}` about `delay_s` from now, this attempt not counted: the
    lease had no room for the pipeline's next step, the text model's quota asked to wait, or the
    worker's memory stayed full. Not held in a lane: the image pool's pace does not govern text
    calls. The task is created after the commit; if that fails the job is left unflagged and the
    repair sweep creates the same task."""
    gen = int(attempt.job.get("task_gen") or 0) + 1
    update: JobDoc = {"status": JobStatus.QUEUED, "attempts": attempt.number - 1, "task_gen": gen,
                              "enqueued": False, "released_at": attempt.now}  # fmt: skip
    if error is not None:
        update["last_error"] = error
    if call is not None:
        update["call"] = call
    delay = min(delay_s, DEFER_CAP_S) * attempt.jitter
    return Outcome(End.DEFERRED, update, code, task=(gen, delay))


def canceled() -> Outcome:
    """A cancel requested between the pipeline's steps: the job ends canceled (refunded)."""
    return Outcome(End.CANCELED, {"status": JobStatus.CANCELED})


def asks_breaker(exc: Exception | None) -> bool:
    """Whether `of_error` needs the image pool's breaker (Attempt.breaker_opened_at) for `exc`: an
    image call's failure that counts against the model."""
    return (
        isinstance(exc, ModelFailure)
        and exc.kind == IMAGE
        and not isinstance(exc, (ModelPermanent, ModelThrottled, ModelOperatorTrouble))
    )


def storage_failed(attempt: Attempt, message: str, model_called: bool) -> Outcome:
    """Cloud Storage trouble, reading an input or storing the output: retried by the queue, which
    backs off as a whole (it is everyone's trouble). After the model answered, its call counts as
    the success it was."""
    call = attempt.call(CallOutcome.SUCCESS) if model_called else None
    return failed(attempt, "storage_unavailable", message, True, call)


def of_error(attempt: Attempt, exc: Exception) -> Outcome:
    """What an attempt that stopped short leads to, for every exception the attempt raises besides
    Cloud Storage's (storage_failed). Anything else is a bug: it propagates, the task is retried and
    the lease keeps other attempts off the job meanwhile."""
    if isinstance(exc, memory.MemoryBusy):
        return deferred(attempt, exc.code, MEMORY_RETRY_S, None)  # nothing was called: no call counted
    if isinstance(exc, inputs.InputError):
        return failed(attempt, exc.code, exc.message, exc.retryable)
    if isinstance(exc, Stopped):
        return canceled() if exc.reason == "canceled" else Outcome(End.NOOP)
    if isinstance(exc, OutOfTime):
        kind = IMAGE if exc.image_calls else TEXT  # its steps so far: the model worked
        return deferred(attempt, "out_of_time", 0.0, attempt.call(CallOutcome.SUCCESS, kind))
    if isinstance(exc, ModelFailure):
        return _model_failed(attempt, exc)
    raise TypeError(f"no outcome for {type(exc).__name__}") from exc


def _model_failed(attempt: Attempt, exc: ModelFailure) -> Outcome:
    error: JobError = {"code": exc.code, "message": exc.message[:1000], "retryable": True}
    if isinstance(exc, ModelOperatorTrouble):
        # The deployment cannot use the model (a key, billing, the day's quota): no attempt spent,
        # nothing refunded; the dispatcher's breaker blocks the pool until a probe gets through.
        call = attempt.call(CallOutcome.BLOCKED, exc.kind, reason=exc.code)
        if exc.kind == IMAGE:
            return held(attempt, exc.code, exc.message, call)
        return deferred(attempt, exc.code, DEFER_CAP_S, call, error)
    if isinstance(exc, ModelThrottled):
        # An image quota error holds the job again; a text one defers it by its RetryInfo delay (the
        # image pace untouched).
        call = attempt.call(CallOutcome.QUOTA, exc.kind)
        if exc.kind == IMAGE:
            return held(attempt, exc.code, exc.message, call)
        delay = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_RETRY_AFTER_S
        return deferred(attempt, exc.code, delay, call, error)
    retryable = not isinstance(exc, ModelPermanent)
    outcome = CallOutcome.FAILURE if retryable else CallOutcome.SUCCESS  # a refusal is the model working
    opened = attempt.breaker_opened_at if asks_breaker(exc) else None
    if opened is not None and recovery.breaker_start(attempt.job) < opened:
        # Released before the model went down for everyone: wait held, spending neither attempts
        # nor retry window. Work released since is a probe, and its failures count as usual.
        return held(attempt, exc.code, exc.message, attempt.call(outcome))
    return failed(attempt, exc.code, exc.message, retryable, attempt.call(outcome, exc.kind))


def with_breaker(attempt: Attempt, opened_at: dt.datetime | None) -> Attempt:
    """The attempt with the image pool's breaker read."""
    return replace(attempt, breaker_opened_at=opened_at)
