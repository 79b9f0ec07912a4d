"""What the dispatcher counts as work already in the queue (dispatch/service.in_queue)."""

from __future__ import annotations

import time

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


def test_each_window_reads_the_next_active_lanes_so_every_lane_is_reached_however_many_there_are(
    services: Services,
):
    # 100,000 tenants can hold more active lanes than one read takes (1,000): the first thousand by
    # id used to be the only ones ever released.
    from lote.dispatch import lanes

    db = services.firestore.db
    pool = f"round-{time.time_ns()}"  # a pool of its own: no real lane is in it
    ids = [f"batch-bat_round{i}" for i in range(5)]
    for lane_id in ids:
        lanes.ref(db, lane_id).set(
            {"pool": pool, "tenant_id": "ten_round", "tier": "standard", "active": True}
        )
    try:
        after, pages = None, []
        for _ in range(3):
            page, after = lanes.round_of_active(db, pool, after, limit=2)
            pages.append([lane.id for lane in page])
    finally:
        for lane_id in ids:
            lanes.ref(db, lane_id).delete()
    assert pages == [ids[:2], ids[2:4], [ids[4], ids[0]]]
