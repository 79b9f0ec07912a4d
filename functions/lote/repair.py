"""The repair sweep: finds accepted work that lost its task and gives it one (Cloud Scheduler runs it)."""

from __future__ import annotations

import datetime as dt
import logging

from lote import timeutil
from lote.batches import service as batches
from lote.batches import store as batch_store
from lote.batches import tasks as batch_tasks
from lote.jobs import service as jobs
from lote.jobs import store as job_store
from lote.services import Services
from lote.webhooks import service as webhooks
from lote.webhooks import store as webhook_store

log = logging.getLogger("lote.repair")


def sweep(services: Services, limit: int = 500) -> dict[str, int]:
    """Create tasks for jobs, batches and webhook deliveries whose enqueue never happened; restart
    jobs whose lease expired."""
    db = services.firestore.db
    now = timeutil.now()
    cutoff = now - dt.timedelta(seconds=services.settings.repair_after_s)
    enqueued = requeued = 0
    for snapshot in job_store.unenqueued_before(db, cutoff, limit):
        job = snapshot.to_dict() or {}
        if job.get("status") != "queued":
            job_store.mark_enqueued(db, snapshot.id)  # canceled or claimed: nothing to dispatch
        elif jobs.enqueue(services, snapshot.id, int(job.get("task_gen", 0))):
            enqueued += 1
    for snapshot in job_store.expired_leases(db, now, limit):
        generation = job_store.bump_generation(db, snapshot.id)
        if generation is not None and jobs.enqueue(services, snapshot.id, generation):
            requeued += 1
    for snapshot in batch_store.unplanned_before(db, cutoff, limit):
        if batches.enqueue_plan(services, snapshot.id):
            enqueued += 1
    for snapshot in batch_store.item_events_pending_before(db, cutoff, limit):
        batch = snapshot.to_dict() or {}
        tag = f"-s{int(now.timestamp()) // 60}"  # a fresh chain: the handler is idempotent
        batch_tasks.item_events(services, snapshot.id, int(batch.get("completions", 1)), 0, tag)
    webhooks_enqueued = 0
    for snapshot in webhook_store.unenqueued_before(db, cutoff, limit):
        doc = snapshot.to_dict() or {}
        webhooks.enqueue(services, [snapshot.id], int(doc.get("task_gen", 0)))
        webhooks_enqueued += 1
    if enqueued or requeued or webhooks_enqueued:
        log.warning("repair sweep: %d jobs enqueued, %d expired leases requeued, %d webhooks enqueued",
                    enqueued, requeued, webhooks_enqueued)  # fmt: skip
    return {"enqueued": enqueued, "requeued": requeued, "webhooks_enqueued": webhooks_enqueued}
