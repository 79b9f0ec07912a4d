"""Job documents (`jobs/{id}`) and the commits that move a job through its states (optimistic,
falling back to a transaction: jobs/commits.py)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from lote import leases, logs, retention, timeutil, transactions
from lote.access import store as tokens
from lote.billing import credits
from lote.dispatch import lanes
from lote.errors import Conflict
from lote.idempotency import Key, Replay, create_once
from lote.jobs import commits, events
from lote.jobs.documents import HISTORY_KEPT, AttemptEntry, JobDoc, job_of
from lote.statuses import TERMINAL, UNPAID, JobStatus
from lote.usage import rules as usage_rules
from lote.usage import store as usage_store

if TYPE_CHECKING:
    from types import ModuleType

    from google.cloud import firestore

    from lote.jobs.outcome import Outcome
    from lote.webhooks.events import Outbox

log = logging.getLogger("lote.jobs")

JOBS = "jobs"


class JobFinished(Conflict):
    """The job is terminal: nothing can change it any more."""

    code = "generation_finished"


TX_ATTEMPTS = commits.TX_ATTEMPTS
# Composite indexes of the queries below; firestore.indexes.json must hold each (a test checks).
INDEXES: list[tuple[str, tuple[str, ...]]] = []  # its queries are in jobs/recovery.py
BUSY_RETRY_AFTER_S = 2


def _fs() -> ModuleType:
    # Imported on first use: google-cloud-firestore costs ~0.5 s of cold start.
    from google.cloud import firestore

    return firestore


def ref(db: firestore.Client, job_id: str) -> firestore.DocumentReference:
    """The job's document."""
    return db.collection(JOBS).document(job_id)


def create(
    db: firestore.Client,
    job_id: str,
    doc: dict[str, Any],
    key: Key | None,
    answer: tuple[int, dict[str, Any], dict[str, str]],
    max_in_flight: int | None = None,
    token_id: str | None = None,
    slices: int = 1,
    events: list[str] | None = None,
) -> Replay | None:
    """Create the job, its idempotency record and its debit atomically (and count it against the
    client token's image cap); a replay when the key was seen; 402, 403 or 429 (nothing written)
    when the balance, the token's cap, a spend cap or the in-flight limit does not allow it. Account
    events the commit staged (a low balance) are added to `events`, for the caller to enqueue."""
    debit = credits.job_debit(job_id, int(doc["price"]))
    admission = credits.Admission(doc["tenant_id"], debit, max_in_flight, slices,
                                  events if events is not None else [])  # fmt: skip

    def also(batch: firestore.WriteBatch) -> None:
        # Staged before the job is: the slice it was admitted through is recorded on it. A commit
        # retried after a lost race stages its events again: only the last attempt's count.
        admission.events.clear()
        doc["purse_slice"] = credits.admit(batch, db, admission)
        if token_id is not None:
            tokens.charge(batch, db, token_id, 1)

    return create_once(db, ref(db, job_id), doc, key, answer, also=also)


def mark_enqueued(db: firestore.Client, job_id: str, check_at: dt.datetime) -> None:
    """Record that the job's task exists, so the repair sweep leaves it alone until `check_at`,
    when the task may have run out of attempts (see jobs/recovery.py)."""
    ref(db, job_id).update({"enqueued": True, "task_check_at": check_at})


def attempt_rule(lease: dt.timedelta, check_at: dt.datetime) -> leases.Judge:
    """Whether an attempt may start: terminal or missing → noop; live lease → busy; else running,
    attempts + 1, under a lease of `lease`. A job whose task was never recorded gets `check_at`."""

    def judge(job: dict[str, Any] | None, now: dt.datetime) -> leases.Claim | dict[str, Any]:
        if job is None:
            return leases.noop("no such job")
        if job["status"] in TERMINAL:
            return leases.noop(f"job is {job['status']}", job)
        if job["status"] == JobStatus.RUNNING and leases.held(job, now):
            # Short on purpose: Retry-After holds the whole queue, and the attempt holding the lease
            # settles this very task when it answers.
            seconds = max(1, min(BUSY_RETRY_AFTER_S, int((job["lease_until"] - now).total_seconds()) + 1))
            return leases.busy("another attempt holds the lease", job, seconds)
        attempt = int(job.get("attempts", 0)) + 1
        update = {"status": JobStatus.RUNNING, "attempts": attempt, "lease_until": now + lease}
        update["enqueued"] = True  # a delivery proves the task exists: the repair sweep can skip it
        if job.get("waits_on"):
            update["waits_on"] = None  # looking again: back in the dispatcher's count if it waits on
        if job.get("hold"):
            # Released by a dispatcher that stopped before marking it: its task is this one.
            update.update(hold=None, released_at=now)
        if job.get("task_check_at") is None:
            # Its enqueue was not recorded: without a check time no sweep would ever ask about it.
            update["task_check_at"] = check_at
        if job.get("started_at") is None:
            update["started_at"] = now
        return update

    return judge


def claim(db: firestore.Client, job_id: str, lease: dt.timedelta, check_at: dt.datetime) -> leases.Claim:
    """Start an attempt as attempt_rule() decides, in one write preconditioned on the job's update
    time (leases.take: no transaction, so no lock outlives a worker killed mid-claim)."""
    return leases.take(db, ref(db, job_id), attempt_rule(lease, check_at), TX_ATTEMPTS)


def settle(
    db: firestore.Client,
    job_id: str,
    attempt: int,
    outcome: Outcome,
    outbox: Outbox | None = None,
    started_at: dt.datetime | None = None,
) -> str:
    """Commit an attempt's outcome (jobs/outcome.py) if this attempt still owns the job, in one
    optimistic commit (jobs/commits.py): the job's update with its `call` record, a terminal state's
    refund and webhook event (staged in `outbox`), and, when the job goes back to wait in its lane,
    the lane marked active in the same commit (lanes.py: held work stays findable).

    Returns the status written, `canceled` when a cancel was requested meanwhile (then the outcome's
    update is not applied), or `stale` when another attempt took over.
    """
    document = ref(db, job_id)

    def body(write: commits.Writer) -> tuple[str, bool]:
        snapshot = write.get(document)
        job = job_of(snapshot.to_dict())
        if job.get("status") != JobStatus.RUNNING or job.get("attempts") != attempt:
            return "stale", False
        now = timeutil.now()
        final: JobDoc
        if job.get("cancel_requested"):
            final = {"status": JobStatus.CANCELED, "finished_at": now, "lease_until": None}
        else:
            final = {**outcome.update, "lease_until": None}
        if final["status"] in TERMINAL:
            final = end(write, job_id, job, final, outbox)
        if final["status"] == JobStatus.QUEUED and outcome.lane is not None:
            lanes.activate(db, *outcome.lane, write.commit)
        if "call" in outcome.update:
            final["call"] = outcome.update["call"]  # the dispatcher counts the call, whatever won
        entry: AttemptEntry = {"attempt": attempt, "started_at": started_at, "ended_at": now,
                               "end": "canceled" if job.get("cancel_requested") else str(outcome.end),
                               "code": outcome.code,
                               "model_ms": int(outcome.update.get("model_ms") or 0)}  # fmt: skip
        final["history"] = [*(job.get("history") or [])[-(HISTORY_KEPT - 1) :], entry]  # read above: bounded
        write.update(snapshot, final)
        return str(final["status"]), True

    return commits.run(db, outbox, body)


def checkpoint(
    db: firestore.Client, job_id: str, attempt: int, fields: dict[str, Any], since: dt.datetime | None = None
) -> tuple[str, dt.datetime | None]:
    """Record a finished pipeline step (jobs/pipeline.py) if this attempt still owns the job:
    (`ok`, the write's time), or `canceled` (a cancel was requested: stop calling models) or `stale`
    (another attempt took over). Nothing else changes, so the attempt's end decides the job's status.

    Optimistic, not a transaction (a step's record is on the worker's path: three of them cost more
    than the rest of a plain image's overhead): the write is preconditioned on the job's last update,
    `since` the previous checkpoint's write, so it costs one call; without it, or when anything wrote
    the job meanwhile (a cancel request), the job is read and judged again."""
    from google.api_core.exceptions import FailedPrecondition

    document = ref(db, job_id)
    for _ in range(TX_ATTEMPTS):
        if since is None:
            snapshot = document.get()
            job = snapshot.to_dict() or {}
            if job.get("status") != JobStatus.RUNNING or job.get("attempts") != attempt:
                return "stale", None
            if job.get("cancel_requested"):
                return "canceled", None
            since = snapshot.update_time
        try:
            written = document.update(fields, option=db.write_option(last_update_time=since))
        except FailedPrecondition:
            since = None
            continue
        return "ok", written.update_time
    # Counted with the other contention 429s (Terraform's `firestore_contention` metric).
    logs.emit(log, logging.WARNING, "firestore.contention", "checkpoint of %s lost every race", job_id,
              kind="optimistic", attempts=TX_ATTEMPTS)  # fmt: skip
    raise transactions.Contention(
        "the job changed under every checkpoint; retry", headers={"Retry-After": "1"}
    )


def end(
    write: commits.Writer,
    job_id: str,
    job: JobDoc,
    final: JobDoc,
    outbox: Outbox | None,
) -> JobDoc:
    """Into a job's transition, before its writes: what every terminal transition also does (a
    single's slot back and, failed or canceled, its refund, or a reused image's discount; the finish
    time and TTL; its image counted in the usage rollups; the webhook event)."""
    unpaid = final["status"] in UNPAID
    refund = credits.end_refund(job, final, unpaid)
    credits.end_job(write.commit, write.db, job_id, job, refund, write.locked)  # reads come first
    now = timeutil.now()
    final = {**final, "finished_at": final.get("finished_at") or now, "expires_at": retention.expires_at(now),
             "hold": None}  # fmt: skip
    usage_store.stage(
        write.commit, write.db, job["tenant_id"], job_id, finished(job, final, unpaid, now), now
    )
    if outbox is not None:
        events.stage(outbox, write.commit, write.db, job_id, {**job, **final})
    return final


def finished(job: JobDoc, final: JobDoc, unpaid: bool, now: dt.datetime) -> usage_rules.Finished:
    """A job's end as usage counts it: what it was charged and given back (a batch item's refund is
    its batch's, counted here per item so the rollups add up to the ledger once batches settle)."""
    from lote.dispatch import share, spend

    price = int(job.get("price") or 0)
    error: dict[str, Any] = dict(final.get("error") or {})
    tokens = dict((final.get("call") or {}).get("spend") or {})
    return usage_rules.Finished(
        status=str(final["status"]), preset=str(job.get("preset") or "none"),
        tier=str(share.tier_of(job)), model=str(job.get("model") or "none"), price=price,
        refund=price if unpaid else max(0, int(final.get("discount") or 0)),
        reused=bool(final.get("reused_from")), code=error.get("code") if unpaid else None,
        accept_to_done_ms=max(0, int((now - job["created_at"]).total_seconds() * 1000)),
        model_micros=spend.usd_micros(tokens, job.get("path") == "batch_mode"),
    )  # fmt: skip


def cancel(db: firestore.Client, job_id: str, tenant_id: str, outbox: Outbox | None = None) -> JobDoc | None:
    """Cancel: queued → canceled; running → cancel_requested. None when not the tenant's job.

    Raises JobFinished (409) for a finished job.
    """
    document = ref(db, job_id)

    def body(write: commits.Writer) -> tuple[JobDoc | None, bool]:
        snapshot = write.get(document)
        job = job_of(snapshot.to_dict()) if snapshot.exists else None
        if job is None or job.get("tenant_id") != tenant_id:
            return None, False
        if job["status"] in TERMINAL:
            raise JobFinished(
                f"generation {job_id} has already finished", {"id": job_id, "status": job["status"]}
            )
        update: JobDoc = {"cancel_requested": True}
        if job["status"] == JobStatus.QUEUED:
            update = end(write, job_id, job, {"status": JobStatus.CANCELED, "cancel_requested": True}, outbox)
        write.update(snapshot, update)
        return {**job, **update}, True

    result: JobDoc | None = commits.run(db, outbox, body)
    return result
