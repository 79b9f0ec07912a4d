"""Batch documents (`batches/{id}`, chunk markers below them) and the queries over a batch's items.

Items are job documents with `batch_id` and `index`; nothing an item does writes the batch
document. Counts come from count() aggregations; the batch document changes only when the fan-out
is enqueued, when a checker or a poll records a transition, and on retry or cancel.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lote import bulk, retention, timeutil, transactions
from lote.batches import events, progress
from lote.batches.documents import BatchDoc, PendingRetry, batch_of
from lote.billing import credits
from lote.errors import Conflict
from lote.jobs.store import JOBS
from lote.statuses import BatchStatus, JobStatus

if TYPE_CHECKING:
    from types import ModuleType

    from google.cloud import firestore

    from lote.webhooks.events import Outbox

BATCHES = "batches"
SWEEP = "repair_sweep"  # the repair sweep's place in its rounds (one small document per round)


class BatchCompleted(Conflict):
    """The batch has completed: it can no longer be canceled."""

    code = "batch_completed"


class BatchCanceled(Conflict):
    """The batch was canceled: its items cannot be retried."""

    code = "batch_canceled"


CHUNKS = "chunks"
STATUSES = tuple(s.value for s in JobStatus)
# Composite indexes of the queries below (firestore.indexes.json must hold each; a test checks).
INDEXES = [
    (JOBS, ("batch_id", "status")),
    (JOBS, ("batch_id", "index")),
    (JOBS, ("batch_id", "status", "index")),
    (JOBS, ("batch_id", "finished_at")),
    (BATCHES, ("tenant_id", "created_at")),
    (BATCHES, ("tenant_id", "status", "created_at")),
    (BATCHES, ("fanout_enqueued", "created_at")),
    (BATCHES, ("item_events_pending", "finished_at")),
    (BATCHES, ("cancel_pending", "canceled_at")),
    (BATCHES, ("finished_at", "created_at")),
]


def _fs() -> ModuleType:
    from google.cloud import firestore

    return firestore


def ref(db: firestore.Client, batch_id: str) -> firestore.DocumentReference:
    """The batch's document."""
    return db.collection(BATCHES).document(batch_id)


def items(db: firestore.Client, batch_id: str) -> firestore.Query:
    """The batch's items."""
    return db.collection(JOBS).where(filter=_fs().FieldFilter("batch_id", "==", batch_id))


def counts(db: firestore.Client, batch_id: str) -> dict[str, int]:
    """Items per status: five count() queries, about one billed read per 1,000 items. The first one's
    read time is the others' (run in parallel), so the tally is one snapshot: an item moving while it is
    read counts once, and the tally sums to the items that existed then."""
    FieldFilter = _fs().FieldFilter  # noqa: N806

    def one(status: str, read_time: Any = None) -> tuple[int, Any]:
        return bulk.counted(items(db, batch_id).where(filter=FieldFilter("status", "==", status)), read_time)

    first, at = one(STATUSES[0])
    rest = STATUSES[1:]
    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        others = [n for n, _ in pool.map(lambda status: one(status, at), rest)]
    return dict(zip(STATUSES, [first, *others], strict=True))


def finished_since(db: firestore.Client, batch_id: str, since: dt.datetime) -> int:
    """Items that reached a terminal state after `since`."""
    return bulk.count(items(db, batch_id).where(filter=_fs().FieldFilter("finished_at", ">=", since)))


def chunks_done(db: firestore.Client, batch_id: str) -> int:
    """Fan-out chunks whose jobs and tasks all exist."""
    return bulk.count(ref(db, batch_id).collection(CHUNKS))


def mark_chunk_done(db: firestore.Client, batch_id: str, chunk: int, created: int) -> None:
    """Record that a chunk's jobs and tasks exist (idempotent)."""
    ref(db, batch_id).collection(CHUNKS).document(str(chunk)).set(
        {"done_at": timeutil.now(), "items": created}
    )


def page_items(
    db: firestore.Client, batch_id: str, status: str | None, page_size: int, after_index: int | None
) -> list[firestore.DocumentSnapshot]:
    """Items in input order, optionally of one status, after an index."""
    query = items(db, batch_id)
    if status is not None:
        query = query.where(filter=_fs().FieldFilter("status", "==", status))
    query = query.order_by("index")
    if after_index is not None:
        query = query.start_after({"index": after_index})
    return list(query.limit(page_size).stream())


def page_batches(
    db: firestore.Client,
    tenant_id: str,
    status: str | None,
    page_size: int,
    after: tuple[dt.datetime, str] | None,
) -> list[firestore.DocumentSnapshot]:
    """A tenant's batches, newest first."""
    fs = _fs()
    query = db.collection(BATCHES).where(filter=fs.FieldFilter("tenant_id", "==", tenant_id))
    if status is not None:
        query = query.where(filter=fs.FieldFilter("status", "==", status))
    query = query.order_by("created_at", direction=fs.Query.DESCENDING).order_by(
        "__name__", direction=fs.Query.DESCENDING
    )
    if after is not None:
        query = query.start_after({"created_at": after[0], "__name__": ref(db, after[1])})
    return list(query.limit(page_size).stream())


def _transact(
    db: firestore.Client,
    batch_id: str,
    change: Callable[[firestore.Transaction, BatchDoc], BatchDoc],
) -> BatchDoc:
    """Read the batch in a transaction, apply what `change` returns (it may stage ledger entries
    or raise), return the result."""

    def run(tx: firestore.Transaction) -> BatchDoc:
        snapshot = ref(db, batch_id).get(transaction=tx)
        batch = batch_of(snapshot.to_dict())
        update = change(tx, batch)
        if update:
            tx.update(snapshot.reference, dict(update))
        return {**batch, **update}

    return transactions.run(db, run, 20)


def succeeded_price(db: firestore.Client, batch_id: str) -> int:
    """Credits the batch keeps for its succeeded items: their prices less reused images' discounts.
    Two sum() aggregations read at one time, not one query of two sums: a query with several
    aggregations counts only the documents holding every field they name (Firestore's rule, and the
    emulator's), which would leave out every item without a discount."""
    query: Any = items(db, batch_id).where(filter=_fs().FieldFilter("status", "==", JobStatus.SUCCEEDED))
    prices = query.sum("price", alias="p").get()
    at = prices[0][0].read_time
    discounts = query.sum("discount", alias="d").get(read_time=at)
    return int(prices[0][0].value or 0) - int(discounts[0][0].value or 0)


def settle(
    db: firestore.Client,
    batch_id: str,
    tally: dict[str, int],
    fanout_complete: bool,
    succeeded_price: int,
    outbox: Outbox | None = None,
) -> BatchDoc:
    """Record what the counts show: started once; finished, and refunded, exactly once per completion.

    The batch keeps what it was charged and what it got back; on finishing it refunds everything
    beyond the price of the items that succeeded, in one ledger entry (no per-item tenant writes).
    """

    def change(tx: firestore.Transaction, batch: BatchDoc) -> BatchDoc:
        now = timeutil.now()
        update: BatchDoc = {}
        started = progress.started(tally)
        if started and batch.get("started_at") is None:
            update["started_at"] = now
        if batch.get("status") == BatchStatus.QUEUED and started:
            update["status"] = BatchStatus.RUNNING
        done = progress.finished(tally, int(batch.get("total", 0)), fanout_complete)
        if done and batch.get("finished_at") is None:
            completion = int(batch.get("completions", 0)) + 1
            update["refunded"] = credits.refund_batch(tx, db, batch_id, batch, succeeded_price, completion)
            update["finished_at"] = now
            update["expires_at"] = retention.expires_at(now)
            canceled = bool(batch.get("cancel_requested"))
            update["status"] = BatchStatus.CANCELED if canceled else BatchStatus.COMPLETED
            update["completions"] = completion
            if update["status"] == BatchStatus.CANCELED and "generation.canceled" in (
                batch.get("webhook_events") or []
            ):
                update["item_events_pending"] = True  # bulk-canceled items: see batches/item_events.py
            if outbox is not None:
                events.stage(outbox, tx, db, batch_id, {**batch, **update}, tally)
        return update

    return _transact(db, batch_id, change)


def request_cancel(db: firestore.Client, batch_id: str) -> BatchDoc:
    """Mark the batch canceled, its queued items still to cancel (`cancel_pending`, cleared by the
    last page of batches/cancel.py); BatchCompleted (409) once it has completed."""

    def change(_tx: firestore.Transaction, batch: BatchDoc) -> BatchDoc:
        if batch.get("status") == BatchStatus.COMPLETED:
            raise BatchCompleted("the batch has already completed", {"id": batch_id})
        if batch.get("cancel_requested"):
            return {}  # a repeated cancel: the first one's pages carry on
        return {"status": BatchStatus.CANCELED, "cancel_requested": True, "cancel_pending": True,
                "canceled_at": timeutil.now()}  # fmt: skip

    return _transact(db, batch_id, change)


def request_retry(
    db: firestore.Client, batch_id: str, error_codes: list[str] | None, include_permanent: bool
) -> BatchDoc:
    """Mark a large batch's failed items to be retried page by page (`retry_pending`, cleared by the
    last page of batches/retry.py); a newer request's generation supersedes an older chain.
    BatchCanceled (409) once canceled."""

    def change(_tx: firestore.Transaction, batch: BatchDoc) -> BatchDoc:
        if batch.get("cancel_requested"):
            raise BatchCanceled("a canceled batch cannot be retried", {"id": batch_id})
        gen = int(batch.get("retry_gen", 0)) + 1
        pending: PendingRetry = {
            "gen": gen, "error_codes": error_codes, "include_permanent": include_permanent,
            "requested_at": timeutil.now(),
        }  # fmt: skip
        return {"retry_gen": gen, "retry_pending": pending}

    return _transact(db, batch_id, change)


def end_retry(db: firestore.Client, batch_id: str, gen: int, stopped: dict[str, Any] | None = None) -> bool:
    """Clear the retry of generation `gen` (not a newer one); `stopped` records why it ended early."""

    def change(_tx: firestore.Transaction, batch: BatchDoc) -> BatchDoc:
        if int((batch.get("retry_pending") or {}).get("gen", -1)) != gen:
            return {}
        return {"retry_pending": None, "retry_stopped": stopped}

    return bool(_transact(db, batch_id, change).get("retry_pending") is None)


def retry_pending_before(
    db: firestore.Client, cutoff: dt.datetime, limit: int
) -> list[firestore.DocumentSnapshot]:
    """Batches whose retry is still being carried out, requested before `cutoff`."""
    fs = _fs()
    query = db.collection(BATCHES).where(filter=fs.FieldFilter("retry_pending.requested_at", "<", cutoff))
    return list(query.limit(limit).stream())


def reopen(db: firestore.Client, batch_id: str, price: int) -> BatchDoc:
    """Before a retry: charge the retried items, run again with a new checker; BatchCanceled (409)."""

    def change(tx: firestore.Transaction, batch: BatchDoc) -> BatchDoc:
        if batch.get("cancel_requested"):
            raise BatchCanceled("a canceled batch cannot be retried", {"id": batch_id})
        gen = int(batch.get("check_gen", 0)) + 1
        update: BatchDoc = {
            "check_gen": gen,
            "charged": credits.charge_retry(tx, db, batch_id, batch, price, gen),
        }
        if batch.get("finished_at") is not None:
            update.update({"status": BatchStatus.RUNNING, "finished_at": None, "expires_at": None})
        return update

    return _transact(db, batch_id, change)


def unplanned_before(
    db: firestore.Client, cutoff: dt.datetime, limit: int
) -> list[firestore.DocumentSnapshot]:
    """Batches whose fan-out task was never confirmed, created before `cutoff`."""
    return bulk.flagged_before(db, BATCHES, "fanout_enqueued", False, "created_at", cutoff, limit)


def unfinished_before(
    db: firestore.Client, cutoff: dt.datetime, limit: int, after: dt.datetime | None = None
) -> list[firestore.DocumentSnapshot]:
    """Batches not finished (queued, running, or canceled with items still running), oldest first,
    created after `after` when given (the sweep's place in its round)."""
    fs = _fs()
    query = (
        db.collection(BATCHES)
        .where(filter=fs.FieldFilter("finished_at", "==", None))
        .where(filter=fs.FieldFilter("created_at", "<", cutoff))
        .order_by("created_at")
    )
    if after is not None:
        query = query.start_after({"created_at": after})
    return list(query.limit(limit).stream())


def sweep_cursor_ref(db: firestore.Client) -> firestore.DocumentReference:
    """Where the repair sweep's round over running batches stands (`after`: a created_at)."""
    return db.collection(SWEEP).document("batches")


def done_chunks(db: firestore.Client, batch_id: str) -> set[int]:
    """Numbers of the chunks whose jobs and tasks exist."""
    return {int(s.id) for s in ref(db, batch_id).collection(CHUNKS).select([]).stream()}


def next_fanout_gen(db: firestore.Client, batch_id: str, seen: int) -> int | None:
    """Claim the next fan-out generation (None if another sweep claimed it first)."""

    def change(_tx: firestore.Transaction, batch: BatchDoc) -> BatchDoc:
        if int(batch.get("fanout_gen") or 0) != seen:
            return {}
        return {"fanout_gen": seen + 1}

    result = _transact(db, batch_id, change)
    return seen + 1 if int(result.get("fanout_gen") or 0) == seen + 1 else None


def record_progress(
    db: firestore.Client, batch_id: str, tally: dict[str, int], chunks: int, rate_per_s: float | None
) -> None:
    """Store what a count of a large batch found, for status reads that do not count (progress.py)."""
    fields = {"tally": tally, "chunks_done": chunks, "rate_per_s": rate_per_s, "at": timeutil.now()}
    ref(db, batch_id).update({"progress": fields})


def cancel_pending_before(
    db: firestore.Client, cutoff: dt.datetime, limit: int
) -> list[firestore.DocumentSnapshot]:
    """Canceled batches whose queued items are still being canceled, canceled before `cutoff`."""
    return bulk.flagged_before(db, BATCHES, "cancel_pending", True, "canceled_at", cutoff, limit)


def item_events_pending_before(
    db: firestore.Client, cutoff: dt.datetime, limit: int
) -> list[firestore.DocumentSnapshot]:
    """Canceled batches whose items' events are still to be created, finished before `cutoff`."""
    return bulk.flagged_before(db, BATCHES, "item_events_pending", True, "finished_at", cutoff, limit)
