"""What a failed attempt leads to: the retry rules (pure, apart from reading the settings), shared by
the attempt's outcome (jobs/outcome.py) and its pipeline so both judge an attempt's end the same
way."""

from __future__ import annotations

from dataclasses import dataclass, field

from lote import retries
from lote.clients.model import ModelFailure, ModelPermanent
from lote.jobs import recovery
from lote.jobs.documents import JobDoc, JobError
from lote.services import Services
from lote.statuses import JobStatus

# A model that answers garbage, no image, or a cut-off answer this many times in a row for one job
# is not having a bad minute: fail the job (refunded) instead of retrying until the queue gives up
# (30 minutes with queue.yaml). Gemini's image models answer NO_IMAGE (or STOP with text only) now
# and then and draw on the next try; three in a row is a prompt they will not draw (decision note
# 2026-12-04-real-gemini-answers.md).
MALFORMED_LIMIT = 3
MALFORMED_CODES = frozenset({"model_bad_response", "no_image", "model_max_tokens"})
# Failures that are not one image's but everyone's: the queue should back off as a whole.
SHARED_TROUBLE = frozenset({"storage_unavailable"})


def error_streak(job: JobDoc, code: str) -> int:
    """How many attempts in a row, this one included, failed with `code`."""
    last = job.get("last_error")
    previous = last["code"] if last else None
    return int(job.get("error_streak") or 0) + 1 if previous == code else 1


def gives_up(job: JobDoc, code: str) -> bool:
    """Whether a retryable failure has repeated enough to be treated as permanent."""
    return code in MALFORMED_CODES and error_streak(job, code) >= MALFORMED_LIMIT


@dataclass(frozen=True)
class Verdict:
    """What a failed attempt leads to: the job's update, and the answer that tells Cloud Tasks
    whether to retry (200 ends the task; 500 and 503 retry it)."""

    update: JobDoc
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """Whether the job fails for good (refunded, its webhook sent)."""
        return bool(self.update["status"] == JobStatus.FAILED)


def judge(job: JobDoc, code: str, message: str, retryable: bool, last_attempt: bool) -> Verdict:
    """The retry rule: a permanent error, the queue's last attempt, or the same unusable answer
    MALFORMED_LIMIT times in a row fail the job; anything else puts it back in the queue.

    A failure of this one image (its input host, a model error, a garbled answer) answers a plain
    500: the task is retried with its own backoff and the queue is not slowed for every tenant (a
    503 would: Cloud Tasks' congestion control). The model failing broadly is the dispatcher's
    breaker's to judge. Only trouble that hits every image alike (Cloud Storage) answers 503, so
    the queue backs off. (A quota error is no failed attempt: see outcome.held.)
    """
    if retryable and gives_up(job, code):
        retryable, message = False, f"{message} ({MALFORMED_LIMIT} such answers in a row)"
    error: JobError = {"code": code, "message": message[:1000], "retryable": retryable}
    if not retryable or last_attempt:
        return Verdict({"status": JobStatus.FAILED, "error": error})
    again: JobDoc = {"status": JobStatus.QUEUED, "last_error": error, "error_streak": error_streak(job, code)}
    return Verdict(again, 503 if code in SHARED_TROUBLE else 500)


def ends_job(job: JobDoc, exc: ModelFailure, last_attempt: bool) -> bool:
    """Whether this model failure fails the job for good, as judge() rules (the pipeline then
    delivers the images it has instead)."""
    return judge(job, exc.code, exc.message, not isinstance(exc, ModelPermanent), last_attempt).final


def is_last_attempt(services: Services, retry_count: int, job: JobDoc) -> bool:
    """Whether the generation queue will not retry after this attempt fails. The queue's retry
    window runs from the current task's start: the job's creation, or the batch retry that gave
    it a new task (recovery.cycle_start)."""
    s = services.settings
    return retries.is_last_attempt(
        s.generation_max_attempts, s.generation_max_retry_s, retry_count, recovery.cycle_start(job)
    )
