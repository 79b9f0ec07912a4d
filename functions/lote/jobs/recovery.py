"""Finding and repairing jobs that lost their task: never enqueued, lease expired, or a task that ran
out of attempts while the worker was down. Used by the repair sweep (repair.py) and the audit.

A queued job's task is the only thing that will ever move it. Cloud Tasks deletes a task that has
exhausted its retries (`max_attempts` and `max_retry_duration`), and a worker that was down or
answering errors for that long leaves the job queued with a task that no longer exists. Each job
therefore carries `task_check_at`: when its task may be gone. Past it the sweep asks Cloud Tasks
(GetTask, a documented call) and either pushes the check back (the task is alive, e.g. waiting in
a long, rate-limited queue) or gives the job a new task generation, or, once the job is older than
`LOTE_ABANDON_AFTER_S`, fails it as `abandoned` (refunded, its webhook sent).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from lote import bulk, timeutil
from lote.jobs import commits
from lote.jobs.documents import JobDoc, JobError, job_of
from lote.jobs.store import JOBS, end, ref
from lote.statuses import JobStatus

if TYPE_CHECKING:
    from google.cloud import firestore

    from lote.webhooks.events import Outbox

# Composite indexes of the queries below; firestore.indexes.json must hold each (a test checks).
INDEXES = [
    (JOBS, ("enqueued", "created_at")),
    (JOBS, ("status", "lease_until")),
    (JOBS, ("status", "task_check_at")),
]
ABANDONED = "abandoned"


def _fs() -> Any:
    from google.cloud import firestore

    return firestore


def unenqueued_before(
    db: firestore.Client, cutoff: dt.datetime, limit: int
) -> list[firestore.DocumentSnapshot]:
    """Jobs whose task was never confirmed, created before `cutoff`."""
    return bulk.flagged_before(db, JOBS, "enqueued", False, "created_at", cutoff, limit)


def expired_leases(db: firestore.Client, now: dt.datetime, limit: int) -> list[firestore.DocumentSnapshot]:
    """Running jobs whose lease ran out (their worker died mid-attempt, or their task is gone)."""
    return _due(db, JobStatus.RUNNING, "lease_until", now, limit)


def task_checks_due(db: firestore.Client, now: dt.datetime, limit: int) -> list[firestore.DocumentSnapshot]:
    """Queued jobs whose task may have run out of attempts by now."""
    return _due(db, JobStatus.QUEUED, "task_check_at", now, limit)


def _due(
    db: firestore.Client, status: str, field: str, now: dt.datetime, limit: int
) -> list[firestore.DocumentSnapshot]:
    fs = _fs()
    query = (
        db.collection(JOBS)
        .where(filter=fs.FieldFilter("status", "==", status))
        .where(filter=fs.FieldFilter(field, "<", now))
        .order_by(field)
        .limit(limit)
    )
    return list(query.stream())


def push_check(db: firestore.Client, job_id: str, check_at: dt.datetime) -> None:
    """The job's task is alive: look again at `check_at`."""
    ref(db, job_id).update({"task_check_at": check_at})


def cycle_start(job: JobDoc) -> dt.datetime:
    """When the job's current try began: its creation, the batch retry that queued it again, or
    the dispatcher's release of its current task (time spent held uses no retry window)."""
    starts = [job.get("retried_at"), job.get("released_at"), job["created_at"]]
    started: dt.datetime = max(t for t in starts if t is not None)
    return started


def breaker_start(job: JobDoc) -> dt.datetime:
    """When the job's current task began, for the breaker: its cycle, or a sweep's restart since.
    A restarted job is new work (its task was made after the breaker opened, like a probe), so its
    failure counts; held again instead, a handful of restarted jobs that fail alone were released
    over and over as the probes and kept the breaker open for everyone. The retry and abandon
    windows keep counting from cycle_start, so a job that keeps crashing its worker is still given
    up on."""
    restarted = job.get("restarted_at")
    started = cycle_start(job)
    return max(started, restarted) if restarted is not None else started


def abandon_error(reason: str) -> JobError:
    """The error of a job given up on: it could not run within LOTE_ABANDON_AFTER_S."""
    return {"code": ABANDONED, "message": f"gave up on this image: {reason}", "retryable": True}


def restart(
    db: firestore.Client,
    job_id: str,
    status: str,
    generation: int,
    abandon_before: dt.datetime,
    reason: str,
    outbox: Outbox | None = None,
) -> int | str | None:
    """A job whose task is gone (still in `status` with task generation `generation`, checked by its
    commit): a new task generation (returned; the caller enqueues it), or `abandoned` when
    it was created before `abandon_before` (failed, refunded, event staged). None if it moved on."""
    document = ref(db, job_id)

    def body(write: commits.Writer) -> tuple[int | str | None, bool]:
        snapshot = write.get(document)
        job = job_of(snapshot.to_dict())
        if job.get("status") != status or int(job.get("task_gen") or 0) != generation:
            return None, False
        lease = job.get("lease_until")
        if status == JobStatus.RUNNING and (lease is None or lease >= timeutil.now()):
            return None, False  # the lease is live (or was never taken): its attempt is still the owner
        if cycle_start(job) < abandon_before:
            final: JobDoc = {"status": JobStatus.FAILED, "error": abandon_error(reason), "lease_until": None}
            write.update(snapshot, end(write, job_id, job, final, outbox))
            return ABANDONED, True
        update: JobDoc = {"status": JobStatus.QUEUED, "lease_until": None, "task_gen": generation + 1,
                          "restarted_at": timeutil.now(), "enqueued": False}  # fmt: skip
        write.update(snapshot, update)
        return generation + 1, True

    result: int | str | None = commits.run(db, outbox, body)
    return result
