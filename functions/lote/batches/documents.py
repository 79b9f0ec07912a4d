"""The stored shape of a batch (`batches/{bat_…}`); its items are jobs (jobs/documents.py JobDoc,
with `batch_id`, `index`, `reference`). TypedDicts, as the job's (decision note
2026-12-05-typed-documents.md); ARCHITECTURE.md's data model names exactly these fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict, cast


class Chunk(TypedDict):
    """A slice of the manifest: `r` = [start byte, end byte, first index]."""

    r: list[int]


class Manifest(TypedDict):
    """Where the batch's items are stored (one JSONL object)."""

    bucket: str
    object: str


class PendingRetry(TypedDict, total=False):
    """A retry still paging (batches/retry.py)."""

    gen: int
    error_codes: list[str] | None
    include_permanent: bool
    requested_at: dt.datetime


class Progress(TypedDict, total=False):
    """The last count of a batch counted from its record (over LOTE_BATCH_LIVE_COUNT_MAX items)."""

    tally: dict[str, int]
    chunks_done: int
    rate_per_s: float
    at: dt.datetime
    counting_at: dt.datetime | None


class BatchDoc(TypedDict, total=False):
    """A batch of items, its fan-out, its money and its paging work."""

    tenant_id: str
    token_id: str | None
    status: str
    total: int
    source: str  # inline or manifest: how its items came
    chunks: list[Chunk]
    manifest: Manifest
    webhook_url: str | None
    webhook_events: list[str]
    metadata: dict[str, Any]
    priority: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime | None  # None again while a retry runs a finished batch
    fanout_enqueued: bool
    fanout_gen: int
    check_gen: int
    cancel_requested: bool
    cancel_pending: bool
    canceled_at: dt.datetime
    completions: int
    charged: int
    refunded: int
    item_events_pending: bool
    retry_gen: int
    retry_pending: PendingRetry | None
    retry_stopped: dict[str, Any] | None  # why the last retry stopped early (402: its page could not be paid)
    progress: Progress


def batch_of(data: Mapping[str, Any] | None) -> BatchDoc:
    """A batch document as read (`snapshot.to_dict()`), typed; an empty one for a missing batch."""
    return cast(BatchDoc, dict(data or {}))


def maybe_batch(data: Mapping[str, Any] | None) -> BatchDoc | None:
    """A batch document as read, typed; None for a missing batch."""
    return None if data is None else batch_of(data)
