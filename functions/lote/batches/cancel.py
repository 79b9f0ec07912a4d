"""A batch's cancel, in pages: the request marks the batch and cancels the first page of its queued
items; a larger batch goes on in CancelItems tasks, page by page, so the request answers at once
whatever the batch's size (the work of 100,000 items would outlast the function's timeout).

A page reads its items by id, not by a query: an item's id derives from (batch, index), so the page
of indexes [start, start + PAGE) is one batched read whatever the batch's size (a query for the
queued items in index order cost the emulator a scan of every job, 20–30 s a page at 100,000 items).
Each page is idempotent: it cancels the queued ones with an update-time precondition, so a page run
twice, or racing the dispatcher releasing one of its items, cancels each item once; a page that lost
such a race runs again from the same start. Items not fanned out yet are created canceled. The
batch's `cancel_pending` stays set until the last page, and the repair sweep restarts a chain that
was lost (batch_store.cancel_pending_before).
"""

from __future__ import annotations

from lote import tasks
from lote.answers import Answer
from lote.batches import fanout, store
from lote.batches.documents import batch_of
from lote.jobs import store as job_store
from lote.services import Services
from lote.statuses import JobStatus

PAGE = 500  # items per page (one batched read, one bulk write)


def page(services: Services, batch_id: str, start: int, total: int) -> tuple[int, int | None]:
    """Cancel the queued items among indexes [start, start + PAGE) of a batch of `total`: (how many,
    the next page's start, or None after the last page)."""
    db = services.firestore.db
    refs = [job_store.ref(db, fanout.item_id(batch_id, i)) for i in range(start, min(total, start + PAGE))]
    found = [s for s in db.get_all(refs) if s.exists] if refs else []
    queued = [s for s in found if (s.to_dict() or {}).get("status") == JobStatus.QUEUED]
    canceled = fanout.cancel_queued(services, queued)
    if canceled < len(queued):
        return canceled, start  # some item changed under its precondition: look at this page again
    return canceled, start + PAGE if start + PAGE < total else None


def run(services: Services, batch_id: str, start: int, seq: int) -> Answer:
    """One page (the CancelItems task); the next page is the next task, the last settles."""
    batch = store.ref(services.firestore.db, batch_id).get().to_dict()
    if batch is None or not batch.get("cancel_pending"):
        return Answer(200, {"result": "noop", "reason": "no cancel pending"})
    canceled, following = page(services, batch_id, start, int(batch["total"]))
    if following is not None:
        tasks.create(services, tasks.CancelItems(batch_id=batch_id, start=following, seq=seq + 1))
        return Answer(200, {"result": "page", "canceled": canceled, "next": following})
    finish(services, batch_id)
    return Answer(200, {"result": "done", "canceled": canceled})


def finish(services: Services, batch_id: str) -> None:
    """Every queued item is canceled: clear the flag and settle the batch if nothing runs."""
    db = services.firestore.db
    store.ref(db, batch_id).update({"cancel_pending": False})
    fanout.observe(services, batch_id, batch_of(store.ref(db, batch_id).get().to_dict()))
