"""What the dispatcher counts as work already in the queue (dispatch/service.in_queue)."""

from __future__ import annotations

from lote import ids, timeutil
from lote.dispatch import service as dispatch
from lote.jobs import store
from lote.services import Services


def test_jobs_waiting_out_a_retry_are_not_work_ahead_of_a_release(services: Services):
    # Before, they were: a handful of items failing alone, each queued for minutes between retries,
    # held back every release of their pool (bench/sim: the last good image 1,996 s in, not 257 s).
    db = services.firestore.db
    base = dispatch.in_queue(db)
    made = []
    for streak in (None, None, 1, 2, 3):
        job_id = ids.new_id("gen")
        doc = {"tenant_id": "ten_inqueue", "status": "queued", "hold": None, "created_at": timeutil.now()}
        if streak is not None:
            doc["error_streak"] = streak
        store.ref(db, job_id).create(doc)
        made.append(job_id)
    try:
        assert dispatch.in_queue(db) - base == 2
    finally:
        for job_id in made:  # never left for another test's dispatcher to count
            store.ref(db, job_id).delete()
