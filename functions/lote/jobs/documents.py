"""The stored shape of a job (`jobs/{gen_…}`): what its store writes and its readers may read.

TypedDicts, not models (decision note 2026-12-05-typed-documents.md): a Firestore snapshot's
`to_dict()` is a plain dict, so a TypedDict types it at no cost on the worker's path, and mypy checks
every key read or written against this list. `total=False` because a document gains fields as it
moves (an output once it succeeds, a hold while it waits); a new job has those of `job_document`.
ARCHITECTURE.md's data model names exactly these fields (tests/unit/test_data_model.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict, cast


class JobError(TypedDict):
    """`error` (why it failed for good) or `last_error` (why its last attempt failed)."""

    code: str
    message: str
    retryable: bool


class JobOutput(TypedDict):
    """The stored image (jobs/outputs.py)."""

    bucket: str
    object: str
    mime_type: str
    width: int
    height: int
    bytes: int
    sha256: str


class CallRecord(TypedDict, total=False):
    """The last model call, for the dispatcher (dispatch/state.call_fields)."""

    pool: str
    outcome: str
    tier: str
    retry: bool
    at: dt.datetime
    ms: int | None
    reason: str
    spend: dict[str, dict[str, int]]


class StepUsage(TypedDict, total=False):
    """One step's calls of one model: `usage[step]` (analyze, generate, verify)."""

    model: str
    calls: int
    ms: int
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int


class AttemptEntry(TypedDict, total=False):
    """One attempt's end in a job's `history` (the last HISTORY_KEPT): what its timeline shows."""

    attempt: int
    started_at: dt.datetime | None
    ended_at: dt.datetime
    end: str  # jobs/outcome.py End, or `canceled` when a cancel won
    code: str | None
    model_ms: int


HISTORY_KEPT = 20


class ModelBatchRef(TypedDict):
    """A job's request in a model batch job: the batch's id and the line's key (`{job}-{task_gen}`)."""

    id: str
    key: str


class JobDoc(TypedDict, total=False):
    """A job: a single generation, or one item of a batch (then `batch_id`, `index`, `reference`)."""

    # What was asked (jobs/service.job_document, batches/manifest.py for items).
    tenant_id: str
    subject: str | None  # the client token's end user; None with an API key
    token_id: str | None
    batch_id: str | None
    index: int
    reference: str
    webhook_events: list[str]  # an item's: the events its batch asked for
    prompt: str
    preset: str | None
    params: dict[str, Any]
    inputs: list[str]
    model: str
    aspect_ratio: str | None
    output_format: str
    metadata: dict[str, Any]
    webhook_url: str | None
    quality_request: dict[str, Any] | None
    price: int
    reuse: bool  # may be delivered an identical request's image (reuse/); absent: yes
    purse_slice: int | None
    tier: str
    path: str  # a batch item's: "online" (Cloud Tasks, one call each) or "batch_mode" (batchmode/)
    created_at: dt.datetime
    trace: str | None  # the W3C traceparent it was accepted under (tracing.py)
    # Where it is (jobs/store.py, jobs/outcome.py, dispatch/lanes.py, jobs/recovery.py).
    status: str
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime
    lease_until: dt.datetime | None
    cancel_requested: bool
    enqueued: bool | None
    task_gen: int
    task_check_at: dt.datetime | None
    hold: str | None
    hold_rank: int
    released_at: dt.datetime
    restarted_at: dt.datetime
    retried_at: dt.datetime
    error_streak: int
    fingerprint: str  # its request's, once computed (reuse/rules.py)
    waits_on: str | None  # the job making the identical image it waits for
    model_batch: ModelBatchRef | None  # the model batch job it is a request of (batchmode/)
    last_error: JobError
    # How it ended.
    error: JobError | None
    output: JobOutput | None
    model_ms: int
    usage: dict[str, StepUsage]
    call: CallRecord
    pipeline: dict[str, Any]
    history: list[AttemptEntry]  # the last attempts' ends, for the timeline
    quality: dict[str, Any]
    reused_from: str | None  # the job whose image it was delivered
    discount: int  # credits given back for a reused image


def job_of(data: Mapping[str, Any] | None) -> JobDoc:
    """A job document as read (`snapshot.to_dict()`), typed; an empty one for a missing job."""
    return cast(JobDoc, dict(data or {}))
