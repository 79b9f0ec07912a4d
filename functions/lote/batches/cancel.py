"""A batch's cancel, in pages: the request marks the batch and cancels the first page of its queued
items; a larger batch goes on in CancelItems tasks, page by page, so the request answers at once
whatever the batch's size (the work of 100,000 items would outlast the function's timeout).

Each page is idempotent: it queries the items still queued from its start index and cancels them
with an update-time precondition, so a page run twice, or racing the dispatcher releasing one of its
items, cancels each item once; a page that lost such a race runs again from the same start. The
batch's `cancel_pending` stays set until the last page, and the repair sweep restarts a chain that
was lost (batch_store.cancel_pending_before).
"""

from __future__ import annotations

from lote import tasks
from lote.answers import Answer
from lote.batches import fanout, store
from lote.services import Services
from lote.statuses import JobStatus

PAGE = 500


def page(services: Services, batch_id: str, start: int) -> tuple[int, int | None]:
    """Cancel one page of queued items from index `start`: (how many, the next page's start, or
    None when no queued item is left from `start` on)."""
    from google.cloud.firestore import FieldFilter

    query = (
        store.items(services.firestore.db, batch_id)
        .where(filter=FieldFilter("status", "==", JobStatus.QUEUED))
        .order_by("index")
        .start_at({"index": start})
        .limit(PAGE)
    )
    found = list(query.stream())
    canceled = fanout.cancel_queued(services, found)
    if canceled < len(found):
        return canceled, start  # some item changed under its precondition: look at this page again
    return canceled, int(found[-1].get("index")) + 1 if len(found) == PAGE else None


def run(services: Services, batch_id: str, start: int) -> Answer:
    """One page (the CancelItems task); the next page is the next task, the last settles."""
    batch = store.ref(services.firestore.db, batch_id).get().to_dict()
    if batch is None or not batch.get("cancel_pending"):
        return Answer(200, {"result": "noop", "reason": "no cancel pending"})
    canceled, following = page(services, batch_id, start)
    if following is not None:
        tasks.create(services, tasks.CancelItems(batch_id=batch_id, start=following))
        return Answer(200, {"result": "page", "canceled": canceled, "next": following})
    finish(services, batch_id)
    return Answer(200, {"result": "done", "canceled": canceled})


def finish(services: Services, batch_id: str) -> None:
    """Every queued item is canceled: clear the flag and settle the batch if nothing runs."""
    db = services.firestore.db
    store.ref(db, batch_id).update({"cancel_pending": False})
    fanout.observe(services, batch_id, store.ref(db, batch_id).get().to_dict() or {})
