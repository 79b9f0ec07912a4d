"""Task handlers of a batch: plan (enqueue chunks), chunk (jobs + tasks), check (settle the batch).

Each handler may run twice or concurrently with itself: job ids derive from (batch, index), job
documents are created only if absent, task names are deterministic, and settling is a transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from lote import bulk, ids, retention, tasks, timeutil
from lote.answers import Answer
from lote.batches import manifest, progress, store
from lote.batches.documents import BatchDoc, maybe_batch
from lote.dispatch import lanes
from lote.dispatch import service as dispatch
from lote.dispatch.share import Tier
from lote.jobs import store as job_store
from lote.jobs.service import check_inputs, job_document, stage_inputs
from lote.quality import plan as quality_plan
from lote.services import Services
from lote.statuses import JobStatus
from lote.webhooks import service as webhooks

log = logging.getLogger("lote.batches")
CHECK_MIN_S, CHECK_MAX_S, CHECK_IDLE_S = 2.0, 60.0, 10.0


def item_id(batch_id: str, index: int) -> str:
    """The job id of a batch item: random-looking, the same on every run of its chunk."""
    return ids.derived_id("gen", f"{batch_id}:{index}")


def plan(services: Services, batch_id: str, gen: int) -> Answer:
    """Enqueue one fan-out task per chunk."""
    db = services.firestore.db
    batch = maybe_batch(store.ref(db, batch_id).get().to_dict())
    if batch is None:
        return Answer(200, {"result": "noop", "reason": "no such batch"})
    done = store.done_chunks(db, batch_id) if gen else set()  # a resumed fan-out skips finished chunks
    chunk_tasks = [
        tasks.FanoutChunk(batch_id=batch_id, chunk=n, gen=gen)
        for n in range(len(batch["chunks"]))
        if n not in done
    ]
    tasks.create_many(services, chunk_tasks)
    return Answer(200, {"result": "planned", "chunks": len(chunk_tasks)})


def _documents(
    services: Services, batch_id: str, batch: BatchDoc, first: int, specs: list[dict[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    tenant_id = batch["tenant_id"]
    now, tier = timeutil.now(), priority(batch)
    docs = []
    for offset, spec in enumerate(specs):
        index = first + offset
        job_id = item_id(batch_id, index)
        decoded = check_inputs(None, tenant_id, services.settings.input_bucket, spec["inputs"])
        inputs = stage_inputs(services, tenant_id, job_id, spec["inputs"], decoded)
        doc = job_document(tenant_id, {**spec, "tier": tier}, inputs, services.settings.default_model)
        # Held in the batch's lane: the dispatcher creates its task when the pace and the fair share
        # let it go (dispatch/service.py), so a big batch never fills the queue ahead of others. An
        # item of a batch-mode tier waits in the batch's batch-mode lane for a model batch job.
        by_batch_mode = batch_mode(services, doc)
        doc.update(batch_id=batch_id, index=index, reference=spec["reference"], created_at=now,
                   path="batch_mode" if by_batch_mode else "online",
                   **lanes.hold_fields(lanes.batch_lane(batch_id, by_batch_mode), index))  # fmt: skip
        # Items report to the batch's URL only the events the batch asked for.
        wanted = batch.get("webhook_events") or []
        doc.update(webhook_url=batch.get("webhook_url") if wanted else None, webhook_events=wanted)
        if batch.get("cancel_requested"):
            doc.update(status=JobStatus.CANCELED, cancel_requested=True, finished_at=now,
                       expires_at=retention.expires_at(now), hold=None)  # fmt: skip
        docs.append((job_id, doc))
    return docs


def chunk(services: Services, batch_id: str, number: int) -> Answer:
    """Create one chunk's job documents (batched), then their generation tasks."""
    db = services.firestore.db
    batch = maybe_batch(store.ref(db, batch_id).get().to_dict())
    if batch is None:
        return Answer(200, {"result": "noop", "reason": "no such batch"})
    start, end, first = batch["chunks"][number]["r"]  # Firestore has no arrays of arrays
    specs = manifest.decode_chunk(
        services.storage.read_range(batch["manifest"]["bucket"], batch["manifest"]["object"], start, end)
    )
    docs = _documents(services, batch_id, batch, first, specs)
    bulk.write(db, creates=[(job_store.ref(db, job_id), doc) for job_id, doc in docs])
    if not batch.get("cancel_requested"):
        if (store.ref(db, batch_id).get().to_dict() or {}).get("cancel_requested"):
            cancel_queued(services, list(db.get_all([job_store.ref(db, job_id) for job_id, _ in docs])))
        else:
            paths = {doc["path"] for _, doc in docs}
            hold(services, batch_id, batch, online="online" in paths, by_batch_mode="batch_mode" in paths)
    store.mark_chunk_done(db, batch_id, number, len(docs))
    start_checker(services, batch_id, int(batch.get("check_gen", 0)))
    return Answer(200, {"result": "created", "items": len(docs)})


def batch_mode(services: Services, job: dict[str, Any]) -> bool:
    """Whether an item goes through Gemini's batch mode: its tier's choice (LOTE_BATCH_MODE_TIERS),
    and one generation with no analyze or verify step (those steps are online calls around it)."""
    if job.get("tier") not in services.settings.batch_mode_tiers:
        return False
    return quality_plan.plan_of(job).steps == ("generate",)


def priority(batch: BatchDoc) -> str:
    """The batch's tier (batches from before tiers are standard)."""
    return str(batch.get("priority") or Tier.STANDARD)


def hold(
    services: Services, batch_id: str, batch: BatchDoc, online: bool = True, by_batch_mode: bool = False
) -> None:
    """After items were held in the batch's lanes: each lane is active and its pool's tick comes
    (the online dispatcher's, or batch mode's gatherer: both run as dispatch ticks of their pool)."""
    for used, pool in ((online, dispatch.pool(services.settings)), (by_batch_mode, lanes.BATCH_MODE)):
        if not used:
            continue
        doc = lanes.document(pool, batch["tenant_id"], Tier(priority(batch)), batch_id)
        lanes.activate(services.firestore.db, lanes.batch_lane(batch_id, pool == lanes.BATCH_MODE), doc)
        dispatch.ensure_running(services, pool)


def resume(services: Services, batch_id: str, batch: BatchDoc) -> bool:
    """Re-plan a fan-out whose tasks are all gone (exhausted while the worker was down) with chunks
    still to do; True when a new plan task was created. Task existence is asked of Cloud Tasks."""
    db = services.firestore.db
    done = store.done_chunks(db, batch_id)
    missing = [n for n in range(len(batch["chunks"])) if n not in done]
    if not missing:
        return False
    gen = int(batch.get("fanout_gen") or 0)
    fanout = [
        tasks.PlanFanout(batch_id=batch_id, gen=gen),
        *(tasks.FanoutChunk(batch_id=batch_id, chunk=n, gen=gen) for n in missing),
    ]
    if any(tasks.exists(services, task) for task in fanout):
        return False
    claimed = store.next_fanout_gen(db, batch_id, gen)
    if claimed is None:
        return False
    log.warning("fan-out of %s resumed as generation %d (%d chunks left)", batch_id, claimed, len(missing))
    return tasks.create(services, tasks.PlanFanout(batch_id=batch_id, gen=claimed))


def cancel_queued(services: Services, snapshots: list[Any]) -> int:
    """Cancel the queued ones among these items (a precondition skips any that moved on)."""
    from google.cloud.firestore import Client

    db = services.firestore.db
    now = timeutil.now()
    updates = [
        (s.reference, {"status": JobStatus.CANCELED, "cancel_requested": True, "finished_at": now,
                       "expires_at": retention.expires_at(now), "hold": None},
         Client.write_option(last_update_time=s.update_time))
        for s in snapshots
        if s.exists and (s.to_dict() or {}).get("status") == JobStatus.QUEUED
    ]  # fmt: skip
    return len(bulk.write(db, updates=updates).written)


def observe(services: Services, batch_id: str, batch: BatchDoc) -> tuple[dict[str, int], int, BatchDoc]:
    """(counts, chunks done, batch) with any due transition recorded; for a batch too large to be
    counted by status reads, also the tally they show (progress.counted_live)."""
    db = services.firestore.db
    tally = store.counts(db, batch_id)
    done_chunks = store.chunks_done(db, batch_id)
    record = not progress.counted_live(batch, services.settings.batch_live_count_max)
    finishing = progress.finished(tally, batch["total"], done_chunks >= len(batch["chunks"]))
    begun = progress.started(tally)
    if (finishing and batch.get("finished_at") is None) or (begun and batch.get("started_at") is None):
        succeeded_price = store.succeeded_price(db, batch_id) if finishing else 0
        with webhooks.events(services) as outbox:
            batch = store.settle(
                db, batch_id, tally, done_chunks >= len(batch["chunks"]), succeeded_price, outbox
            )
        if batch.get("item_events_pending"):
            tasks.create(
                services, tasks.EmitItemEvents(batch_id=batch_id, completion=int(batch["completions"]))
            )
    if record:
        processed = int(tally.get(JobStatus.SUCCEEDED, 0)) + int(tally.get(JobStatus.FAILED, 0))
        store.record_progress(
            db, batch_id, tally, done_chunks, throughput_per_s(services, batch_id, batch, processed)
        )
    return tally, done_chunks, batch


def refresh(services: Services, batch_id: str) -> Answer:
    """Count a large batch now (a poll found its recorded tally stale): the RefreshBatch task. One
    count at a time: it claims the batch with `progress.counting_at` (a write preconditioned on what
    it read), which the recorded tally replaces."""
    from google.api_core.exceptions import FailedPrecondition

    db = services.firestore.db
    snapshot = store.ref(db, batch_id).get()
    batch, now = maybe_batch(snapshot.to_dict()), timeutil.now()
    if batch is None or not progress.stale(batch, now, services.settings.batch_refresh_s / 2):
        return Answer(200, {"result": "noop", "reason": "no such batch, counted recently, or counting"})
    try:
        snapshot.reference.update(
            {"progress.counting_at": now}, option=db.write_option(last_update_time=snapshot.update_time)
        )
    except FailedPrecondition:
        return Answer(200, {"result": "noop", "reason": "the batch changed: another count or a transition"})
    tally, _, _ = observe(services, batch_id, batch)
    return Answer(200, {"result": "counted", "remaining": progress.remaining(tally, int(batch["total"]))})


def throughput_per_s(
    services: Services, batch_id: str, batch: BatchDoc, processed: int | None = None
) -> float | None:
    """Items finished per second over the last five minutes (or since the batch was created, if
    later); once the batch is final, `processed` (succeeded + failed) over its whole life.

    The window starts at creation, not at `started_at`: that is when a look first saw work under
    way, and a small batch can finish between two looks (started_at = finished_at), which counted
    none of its items."""
    if batch.get("started_at") is None:
        return None
    finished = batch.get("finished_at")
    if finished is not None and processed is not None:
        return processed / max(1.0, (finished - batch["created_at"]).total_seconds())
    now = timeutil.now()
    since = max(batch["created_at"], now - dt.timedelta(minutes=5))
    seconds = max(1.0, (now - since).total_seconds())
    return store.finished_since(services.firestore.db, batch_id, since) / seconds


def start_checker(services: Services, batch_id: str, gen: int) -> None:
    """The first link of the checker chain of one run of the batch (its first run, or a retry)."""
    tasks.create(services, tasks.CheckBatch(batch_id=batch_id, gen=gen, seq=0), CHECK_MIN_S)


def check(services: Services, batch_id: str, gen: int, seq: int) -> Answer:
    """One link of the checker chain: settle if done, else schedule the next look."""
    batch = maybe_batch(store.ref(services.firestore.db, batch_id).get().to_dict())
    if batch is None or int(batch.get("check_gen", 0)) != gen:
        return Answer(200, {"result": "noop", "reason": "no such batch or a newer checker"})
    tally, _, batch = observe(services, batch_id, batch)
    if batch.get("finished_at") is not None:
        return Answer(200, {"result": "settled", "status": batch["status"]})
    remaining = progress.remaining(tally, batch["total"])
    rate = throughput_per_s(services, batch_id, batch) or 0.0
    delay = CHECK_IDLE_S if rate <= 0 else min(CHECK_MAX_S, max(CHECK_MIN_S, remaining / rate / 4))
    tasks.create(services, tasks.CheckBatch(batch_id=batch_id, gen=gen, seq=seq + 1), delay)
    return Answer(200, {"result": "waiting", "remaining": remaining, "next_in_s": round(delay, 1)})
