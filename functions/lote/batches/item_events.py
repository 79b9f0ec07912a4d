"""`generation.canceled` events of batch items canceled in bulk (a batch cancel writes them with a
BulkWriter, outside any per-item commit).

When such a batch settles, its transaction sets `item_events_pending`; this task then pages through
the canceled items and creates their deliveries with create-if-absent under the same derived ids the
per-item commits use, so every canceled item gets its event exactly once, however often the task
or the repair sweep runs it.
"""

from __future__ import annotations

from lote import bulk, tasks
from lote.answers import Answer
from lote.batches import store
from lote.batches.documents import BatchDoc
from lote.jobs import events as job_events
from lote.jobs.documents import job_of
from lote.services import Services
from lote.statuses import JobStatus
from lote.webhooks import events as webhook_events
from lote.webhooks import service as webhooks
from lote.webhooks import store as webhook_store

PAGE = 500


def wanted(batch: BatchDoc) -> bool:
    """Whether the batch asked for its items' `generation.canceled` events."""
    return bool(batch.get("webhook_url")) and "generation.canceled" in (batch.get("webhook_events") or [])


def emit(services: Services, batch_id: str, completion: int, start: int) -> Answer:
    """One page of canceled items from index `start`; the next page is the next task."""
    from google.cloud.firestore import FieldFilter

    db = services.firestore.db
    batch = store.ref(db, batch_id).get().to_dict()
    if batch is None or not batch.get("item_events_pending"):
        return Answer(200, {"result": "noop", "reason": "no item events pending"})
    query = (
        store.items(db, batch_id)
        .where(filter=FieldFilter("status", "==", JobStatus.CANCELED))
        .order_by("index")
        .start_at({"index": start})
        .limit(PAGE)
    )
    found = list(query.stream())
    creates = []
    for snapshot in found:
        job = job_of(snapshot.to_dict())
        event = job_events.event(services.settings.api_url, snapshot.id, job)
        if event is not None:
            kind, url, data = event
            msg_id, doc = webhook_events.prepared(
                tenant_id=job["tenant_id"], url=url, kind=kind, subject=snapshot.id, data=data,
                occurrence=job_events.occurrence(job),
            )  # fmt: skip
            creates.append((webhook_store.ref(db, msg_id), dict(doc)))
    written = bulk.write(db, creates=creates).written  # existing ones (staged in a job's commit) are skipped
    webhooks.enqueue(services, sorted(written))
    if len(found) == PAGE:
        following = tasks.EmitItemEvents(
            batch_id=batch_id, completion=completion, start=int(found[-1].get("index")) + 1
        )
        tasks.create(services, following)
        return Answer(200, {"result": "page", "created": len(written)})
    store.ref(db, batch_id).update({"item_events_pending": False})
    return Answer(200, {"result": "done", "created": len(written)})
