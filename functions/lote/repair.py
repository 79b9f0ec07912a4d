"""The repair sweep: finds accepted work that lost its task and gives it one (Cloud Scheduler runs it).

Every step is bounded (`LOTE_SWEEP_LIMIT` documents) and idempotent: tasks have deterministic
names, and every state change is a commit that re-checks what the query saw (a transaction; for a
job, optimistic first: jobs/commits.py). Work that can never finish (a job whose task is gone after
`LOTE_ABANDON_AFTER_S`) is failed as `abandoned` and refunded. What the sweep cannot repair, the
audit (audit.py) reports.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from lote import logs, tasks, timeutil
from lote.audit import scan
from lote.batches import fanout
from lote.batches import service as batches
from lote.batches import store as batch_store
from lote.batches.documents import batch_of
from lote.batchmode import service as batch_mode
from lote.dispatch import lanes
from lote.dispatch import service as dispatch
from lote.dispatch import state as dispatch_state
from lote.jobs import recovery
from lote.jobs import service as jobs
from lote.jobs import store as job_store
from lote.services import Services
from lote.statuses import DeliveryStatus, JobStatus
from lote.transactions import Contention
from lote.webhooks import service as webhooks
from lote.webhooks import store as webhook_store

log = logging.getLogger("lote.repair")
PARALLEL_CHECKS = 8


def sweep(services: Services, limit: int | None = None) -> dict[str, int]:
    """One pass over every kind of stranded work; returns what it did, by kind."""
    limit = limit or services.settings.sweep_limit
    done: Counter[str] = Counter()
    _unenqueued_jobs(services, limit, done)
    _lost_job_tasks(services, limit, done)
    _batches(services, limit, done)
    _dispatcher(services, done)
    done["model_batches_restarted"] += batch_mode.restart_overdue(services, limit)
    _webhooks(services, limit, done)
    # What the sweep cannot repair it reports: one log line per violation, which Terraform's
    # `audit_violations` metric counts and alerts on.
    report = scan.sample(services, max(1, limit // 5))
    scan.log_violations(report)
    done["audit_violations"] = len(report.violations)
    if any(done.values()):
        log.warning("repair sweep: %s", ", ".join(f"{k}={v}" for k, v in sorted(done.items()) if v))
    return {key: done[key] for key in REPORTED}


REPORTED = (
    "enqueued", "requeued", "lost_tasks", "abandoned", "tasks_alive", "batches_settled",
    "fanouts_resumed", "cancels_restarted", "retries_restarted", "item_events_restarted",
    "dispatch_restarted", "model_batches_restarted",
    "webhooks_enqueued", "webhooks_requeued", "webhooks_failed", "skipped_busy",
    "audit_violations",
)  # fmt: skip


@contextmanager
def _one(done: Counter[str], subject: str) -> Iterator[None]:
    """One document's repair: one that is too busy right now (locked, contended) is skipped and
    left to the next sweep, never the rest of the pass."""
    from google.api_core.exceptions import Aborted, DeadlineExceeded, ServiceUnavailable

    try:
        yield
    except (Contention, Aborted, DeadlineExceeded, ServiceUnavailable) as exc:
        done["skipped_busy"] += 1
        log.warning("repair sweep: %s skipped this time (%s: %s)", subject, type(exc).__name__, exc)


def _with_task(
    services: Services, current: Callable[[Any], tasks.Task], due: list[Any]
) -> list[tuple[Any, bool]]:
    """Each document with whether its current task still exists, asked in parallel."""

    def alive(snapshot: Any) -> bool:
        return tasks.exists(services, current(snapshot))

    with ThreadPoolExecutor(max_workers=PARALLEL_CHECKS) as pool:
        return list(zip(due, pool.map(alive, due), strict=True))


def _generation_task(snapshot: Any) -> tasks.Task:
    return tasks.Generate(job_id=snapshot.id, gen=int(snapshot.get("task_gen") or 0))


def _delivery_task(snapshot: Any) -> tasks.Task:
    return tasks.DeliverWebhook(delivery_id=snapshot.id, gen=int(snapshot.get("task_gen") or 0))


def _cutoff(services: Services) -> dt.datetime:
    return timeutil.now() - dt.timedelta(seconds=services.settings.repair_after_s)


def _unenqueued_jobs(services: Services, limit: int, done: Counter[str]) -> None:
    db = services.firestore.db
    for snapshot in recovery.unenqueued_before(db, _cutoff(services), limit):
        job = snapshot.to_dict() or {}
        with _one(done, snapshot.id):
            if job.get("status") != JobStatus.QUEUED:
                db.collection(job_store.JOBS).document(snapshot.id).update(
                    {"enqueued": True}
                )  # nothing to run
            elif jobs.enqueue(services, snapshot.id, int(job.get("task_gen", 0))):
                done["enqueued"] += 1


def _restart(services: Services, snapshot: Any, status: str, reason: str, done: Counter[str]) -> None:
    job = snapshot.to_dict() or {}
    abandon_before = timeutil.now() - dt.timedelta(seconds=services.settings.abandon_after_s)
    generation = int(job.get("task_gen") or 0)
    with webhooks.events(services) as outbox:
        result = recovery.restart(
            services.firestore.db, snapshot.id, status, generation, abandon_before, reason, outbox
        )
    if result == recovery.ABANDONED:
        done["abandoned"] += 1
        logs.emit(log, logging.ERROR, "job.abandoned", "job %s abandoned: %s", snapshot.id, reason,
                  job_id=snapshot.id, reason=reason)  # fmt: skip
    elif isinstance(result, int) and jobs.enqueue(services, snapshot.id, result):
        done["requeued" if status == JobStatus.RUNNING else "lost_tasks"] += 1


def _lost_job_tasks(services: Services, limit: int, done: Counter[str]) -> None:
    """Expired leases, and queued jobs whose task ran out of attempts (a worker outage)."""
    db = services.firestore.db
    now = timeutil.now()
    for snapshot in recovery.expired_leases(db, now, limit):
        with _one(done, snapshot.id):
            _restart(services, snapshot, JobStatus.RUNNING, "its worker stopped answering", done)
    due = recovery.task_checks_due(db, now, limit)
    for snapshot, exists in _with_task(services, _generation_task, due):
        with _one(done, snapshot.id):
            if exists:
                recovery.push_check(db, snapshot.id, tasks.check_at(services, tasks.Generate))
                done["tasks_alive"] += 1
            else:
                _restart(services, snapshot, JobStatus.QUEUED, "its task ran out of attempts", done)


def _batches(services: Services, limit: int, done: Counter[str]) -> None:
    """Fan-outs never enqueued or stalled, batches whose checker chain was lost, item events."""
    db = services.firestore.db
    cutoff = _cutoff(services)
    for snapshot in batch_store.unplanned_before(db, cutoff, limit):
        with _one(done, snapshot.id):
            if batches.enqueue_plan(services, snapshot.id):
                done["enqueued"] += 1
    for snapshot in _running_batches(db, cutoff, limit):
        batch = batch_of(snapshot.to_dict())
        if not batch.get("fanout_enqueued"):
            continue
        with _one(done, snapshot.id):
            if fanout.resume(services, snapshot.id, batch):
                done["fanouts_resumed"] += 1
            # Settling never depends on the checker chain surviving: the sweep polls like a client.
            _, _, settled = fanout.observe(services, snapshot.id, batch)
            if settled.get("finished_at") is not None:
                done["batches_settled"] += 1
    for snapshot in batch_store.cancel_pending_before(db, cutoff, limit):
        tag = f"-s{int(timeutil.now().timestamp()) // 60}"  # a fresh chain: each page is idempotent
        with _one(done, snapshot.id):
            tasks.create(services, tasks.CancelItems(batch_id=snapshot.id, tag=tag))
            done["cancels_restarted"] += 1
    for snapshot in batch_store.retry_pending_before(db, cutoff, limit):
        gen = int((snapshot.get("retry_pending") or {}).get("gen", 0))
        tag = f"-s{int(timeutil.now().timestamp()) // 60}"  # a fresh chain: each page is idempotent
        with _one(done, snapshot.id):
            tasks.create(services, tasks.RetryItems(batch_id=snapshot.id, gen=gen, tag=tag))
            done["retries_restarted"] += 1
    for snapshot in batch_store.item_events_pending_before(db, cutoff, limit):
        batch = batch_of(snapshot.to_dict())
        tag = f"-s{int(timeutil.now().timestamp()) // 60}"  # a fresh chain: the handler is idempotent
        fresh = tasks.EmitItemEvents(
            batch_id=snapshot.id, completion=int(batch.get("completions", 1)), tag=tag
        )
        with _one(done, snapshot.id):
            tasks.create(services, fresh)
            done["item_events_restarted"] += 1


def _running_batches(db: Any, cutoff: dt.datetime, limit: int) -> list[Any]:
    """The next `limit` unfinished batches of a round over all of them. Running batches stay in the
    query's answer for hours, so always taking the oldest `limit` would never reach a newer batch
    whose checker chain was lost while more than `limit` older ones run; the round goes on from
    where the last sweep stopped and wraps to the oldest."""
    cursor = batch_store.sweep_cursor_ref(db)
    after = (cursor.get().to_dict() or {}).get("after")
    page = batch_store.unfinished_before(db, cutoff, limit, after=after)
    if len(page) < limit and after is not None:  # the round ends here: wrap to its start
        seen = {s.id for s in page}
        page += [s for s in batch_store.unfinished_before(db, cutoff, limit - len(page)) if s.id not in seen]
    full = len(page) >= limit
    cursor.set({"after": page[-1].get("created_at") if full else None, "at": timeutil.now()})
    return page


def _dispatcher(services: Services, done: Counter[str]) -> None:
    """Held work with no tick for a while (a chain lost with its last task): restart it, for the
    online pool's dispatcher and for batch mode's gatherer."""
    db = services.firestore.db
    for pool in (dispatch.pool(services.settings), lanes.BATCH_MODE):
        if not lanes.active(db, pool, limit=1):
            continue
        last_run = (dispatch_state.load(db, pool) or {}).get("run_at")
        # The gatherer ticks up to every 30 s (batchmode/service.tick): three of those.
        slowest = 90.0 if pool == lanes.BATCH_MODE else 0.0
        stale = dt.timedelta(seconds=max(10.0, 5 * services.settings.dispatch_window_s, slowest))
        if last_run is None or timeutil.now() - last_run > stale:
            dispatch.ensure_running(services, pool)
            done["dispatch_restarted"] += 1


def _webhooks(services: Services, limit: int, done: Counter[str]) -> None:
    """Deliveries never enqueued, and pending ones whose task ran out of attempts."""
    db = services.firestore.db
    for snapshot in webhook_store.unenqueued_before(db, _cutoff(services), limit):
        with _one(done, snapshot.id):
            webhooks.enqueue(services, [snapshot.id], int(snapshot.get("task_gen") or 0))
            done["webhooks_enqueued"] += 1
    due = webhook_store.task_checks_due(db, timeutil.now(), limit)
    for snapshot, exists in _with_task(services, _delivery_task, due):
        with _one(done, snapshot.id):
            if exists:
                webhook_store.push_check(db, snapshot.id, tasks.check_at(services, tasks.DeliverWebhook))
                continue
            outcome = webhooks.restart_lost(services, snapshot.id, int(snapshot.get("task_gen") or 0))
            if outcome is not None:
                done["webhooks_failed" if outcome == DeliveryStatus.FAILED else "webhooks_requeued"] += 1
