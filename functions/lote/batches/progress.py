"""A batch's progress, in one place: the tally of its items' states and the Batch resource built
from it. The status route, the checker, the settling transaction and the webhook event all read
these, so they cannot disagree (e.g. on an empty tally or on items not yet fanned out)."""

from __future__ import annotations

import datetime as dt

from lote import timeutil
from lote.batches.documents import BatchDoc
from lote.batches.schemas import Batch, BatchLinks, Counts, Fanout
from lote.statuses import TERMINAL, JobStatus


def counted_live(batch: BatchDoc, live_max: int) -> bool:
    """Whether a status read counts the batch's items itself (count() aggregations cost about one
    read per 1,000 index entries and take time in proportion): up to `live_max` items
    (LOTE_BATCH_LIVE_COUNT_MAX). A larger batch shows the tally its checker chain, or a count a
    poll asked for, recorded (`progress` on the batch document): a poll of 100,000 items costs two
    reads."""
    return int(batch.get("total") or 0) <= live_max


def recorded(batch: BatchDoc) -> tuple[dict[str, int], int, float | None, dt.datetime | None]:
    """What the last count of a large batch recorded: (tally, chunks done, items/s, when); an empty
    tally before the first (its items count as queued)."""
    found = batch.get("progress") or {}
    stored = found.get("tally") or {}
    tally = {status.value: int(stored.get(status.value, 0)) for status in JobStatus}
    return tally, int(found.get("chunks_done") or 0), found.get("rate_per_s"), found.get("at")


COUNT_LEASE_S = 120  # a count of a large batch takes seconds; one that died frees the batch after this


def stale(batch: BatchDoc, now: dt.datetime, refresh_s: float) -> bool:
    """Whether a running large batch's recorded tally is older than `refresh_s` and no count is under
    way (a poll then asks for one: counts of 100,000 items that overlapped fought over the batch
    document's settling transaction for 40 s)."""
    found = batch.get("progress") or {}
    at, counting = found.get("at"), found.get("counting_at")
    if batch.get("finished_at") is not None or (at is not None and (now - at).total_seconds() <= refresh_s):
        return False
    return counting is None or (now - counting).total_seconds() > COUNT_LEASE_S


def terminal(tally: dict[str, int]) -> int:
    """Items that have finished (succeeded, failed or canceled)."""
    return sum(tally.get(status, 0) for status in TERMINAL)


def started(tally: dict[str, int]) -> bool:
    """Whether any item has begun (a canceled-before-running item does not count)."""
    return any(tally.get(s, 0) for s in (JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED))


def finished(tally: dict[str, int], total: int, fanned_out: bool) -> bool:
    """Every item exists and is terminal."""
    return fanned_out and terminal(tally) >= total


def remaining(tally: dict[str, int], total: int) -> int:
    """Items not yet terminal, counting those not yet fanned out."""
    return max(0, total - terminal(tally))


def counts(tally: dict[str, int], total: int) -> Counts:
    """Items per state; items not yet fanned out count as queued.

    The five counts are separate queries, so an item that finishes between them can be counted
    twice (running, then succeeded): a completed batch once showed 7 succeeded and 1 running of 7.
    Terminal counts only grow, so they stand, and the open states share what is left."""
    open_items = max(0, total - terminal(tally))
    running = min(tally.get(JobStatus.RUNNING, 0), open_items)
    return Counts(
        total=total, **{**tally, JobStatus.RUNNING: running, JobStatus.QUEUED: open_items - running}
    )


def percent(tally: dict[str, int], total: int) -> float:
    """Share of items in a terminal state; an empty batch is done."""
    return round(100.0 * terminal(tally) / total, 2) if total else 100.0


def links(api_url: str, batch_id: str) -> BatchLinks:
    """URLs of a batch."""
    base = f"{api_url}/v1/batches/{batch_id}"
    return BatchLinks(self=base, items=f"{base}/items", results=f"{base}/results.jsonl")


MAX_ETA_S = 30 * 86400


def render(
    api_url: str,
    batch_id: str,
    batch: BatchDoc,
    tally: dict[str, int],
    chunks_done: int,
    rate_per_s: float | None = None,
    waiting_reason: str | None = None,
    share_per_s: float | None = None,
) -> Batch:
    """The Batch resource: what GET /v1/batches/{id} answers and what batch events carry."""
    total, chunks = int(batch["total"]), len(batch.get("chunks") or [])
    eta = None
    pace = share_per_s or rate_per_s  # the batch's share of the model while it has held items
    if pace and batch.get("finished_at") is None:
        seconds = remaining(tally, total) / pace
        # A share that is nearly nothing (an open breaker, economy behind others) has no ETA worth
        # giving, and its quotient can exceed any date.
        eta = timeutil.iso(timeutil.now() + dt.timedelta(seconds=seconds)) if seconds <= MAX_ETA_S else None
    return Batch(
        id=batch_id,
        status=batch["status"],
        counts=counts(tally, total),
        progress=percent(tally, total),
        fanout=Fanout(
            chunks_done=min(chunks_done, chunks), chunks_total=chunks, complete=chunks_done >= chunks
        ),
        created_at=timeutil.iso(batch["created_at"]) or "",
        started_at=timeutil.iso(batch.get("started_at")),
        finished_at=timeutil.iso(batch.get("finished_at")),
        throughput_per_min=None if rate_per_s is None else round(rate_per_s * 60, 1),
        eta=eta,
        priority=batch.get("priority") or "standard",
        waiting_on_model=waiting_reason is not None and batch.get("finished_at") is None,
        waiting_reason=waiting_reason if batch.get("finished_at") is None else None,
        metadata=batch.get("metadata") or {},
        links=links(api_url, batch_id),
    )
