"""Model batch documents (`model_batches/{mb_…}`) and the writes that move them and their jobs.

A model batch job's jobs are the truth of what it holds: each carries `model_batch` {id, key}. Its
document records where the job is on lote's side (rules.State), when it must be looked at next
(`check_at`: the repair sweep restarts one whose look is overdue), and Gemini's name for it."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from lote import bulk, transactions
from lote.batchmode.documents import ModelBatchDoc, model_batch_of
from lote.batchmode.rules import State, key_of
from lote.dispatch import lanes
from lote.statuses import JobStatus

if TYPE_CHECKING:
    from google.cloud import firestore

MODEL_BATCHES = lanes.MODEL_BATCHES
JOBS = lanes.JOBS
# Composite indexes of the queries below; firestore.indexes.json must hold each (a test checks).
INDEXES = [(MODEL_BATCHES, ("ended", "check_at")), (JOBS, ("model_batch.id", "status"))]
IN_FLIGHT_CAP = 1000


def ref(db: firestore.Client, mb_id: str) -> firestore.DocumentReference:
    """The model batch's document."""
    return db.collection(MODEL_BATCHES).document(mb_id)


def get(db: firestore.Client, mb_id: str) -> ModelBatchDoc | None:
    """The model batch as stored (None when missing)."""
    snapshot = ref(db, mb_id).get()
    return model_batch_of(snapshot.to_dict()) if snapshot.exists else None


def in_flight(db: firestore.Client) -> int:
    """Model batch jobs gathered or submitted and not ended (Gemini's concurrency quota)."""
    from google.cloud.firestore import FieldFilter

    query = db.collection(MODEL_BATCHES).where(filter=FieldFilter("ended", "==", False))
    return bulk.count(query.limit(IN_FLIGHT_CAP))


def overdue(db: firestore.Client, before: dt.datetime, limit: int) -> list[Any]:
    """Unended model batches whose next look was due before `before` (the sweep's query)."""
    from google.cloud.firestore import FieldFilter

    query = (
        db.collection(MODEL_BATCHES)
        .where(filter=FieldFilter("ended", "==", False))
        .where(filter=FieldFilter("check_at", "<", before))
        .limit(limit)
    )
    return list(query.stream())


def jobs_of(db: firestore.Client, mb_id: str) -> list[Any]:
    """The jobs still running as this model batch's requests (snapshots)."""
    from google.cloud.firestore import FieldFilter

    query = (
        db.collection(JOBS)
        .where(filter=FieldFilter("model_batch.id", "==", mb_id))
        .where(filter=FieldFilter("status", "==", JobStatus.RUNNING))
    )
    return list(query.stream())


def gather(
    db: firestore.Client, mb_id: str, model: str, held: list[Any], now: dt.datetime, lease: dt.timedelta,
    check_at: dt.datetime,
) -> int:  # fmt: skip
    """Make a model batch of these held jobs: its document first (created once: a repeated tick
    finds it and gathers nothing), then each job running as one of its requests, preconditioned on
    the job as read (one a cancel or a retry changed meanwhile is left out). Returns how many."""
    from google.api_core.exceptions import AlreadyExists
    from google.cloud.firestore import Client

    doc: ModelBatchDoc = {"state": State.GATHERED, "model": model, "count": 0, "created_at": now,
                          "ended": False, "check_at": check_at, "submit_gen": 0, "poll_seq": 0,
                          "name": None}  # fmt: skip
    try:
        ref(db, mb_id).create(dict(doc))
    except AlreadyExists:
        return 0
    updates = []
    for job in held:
        fields = {
            "status": JobStatus.RUNNING, "attempts": int(job.get("attempts") or 0) + 1, "hold": None,
            "model_batch": {"id": mb_id, "key": key_of(job.id, int(job.get("task_gen") or 0))},
            "lease_until": now + lease, "released_at": now, "enqueued": None, "task_check_at": None,
        }  # fmt: skip
        if job.get("started_at") is None:
            fields["started_at"] = now
        updates.append((job.reference, fields, Client.write_option(last_update_time=job.update_time)))
    written = len(bulk.write(db, updates=updates).written)
    ref(db, mb_id).update({"count": written})
    return written


def submitted(db: firestore.Client, mb_id: str, name: str, now: dt.datetime, check_at: dt.datetime) -> None:
    """Gemini has it under `name`; the first look (seq 1) is due by `check_at`."""
    ref(db, mb_id).update({"state": State.SUBMITTED, "name": name, "submitted_at": now, "poll_seq": 1,
                           "check_at": check_at})  # fmt: skip


def next_look(
    db: firestore.Client, mb_id: str, seq: int, check_at: dt.datetime, model_state: str | None = None
) -> bool:
    """Make look `seq + 1` the due one, if `seq` still was (a duplicate or overtaken look changes
    nothing): False when it was not."""

    def body(tx: firestore.Transaction) -> bool:
        snapshot = ref(db, mb_id).get(transaction=tx)
        found = model_batch_of(snapshot.to_dict()) if snapshot.exists else None
        if found is None or found.get("ended") or int(found.get("poll_seq") or 0) != seq:
            return False
        update: dict[str, Any] = {"poll_seq": seq + 1, "check_at": check_at}
        if model_state is not None:
            update["model_state"] = model_state
        tx.update(snapshot.reference, update)
        return True

    return transactions.run(db, body)


def restart(db: firestore.Client, mb_id: str, check_at: dt.datetime) -> ModelBatchDoc | None:
    """The sweep's restart of an overdue model batch: its submission's or its look's number moved on
    (a task name of Cloud Tasks cannot be reused for a while), returned as updated; None if it ended."""

    def body(tx: firestore.Transaction) -> ModelBatchDoc | None:
        snapshot = ref(db, mb_id).get(transaction=tx)
        found = model_batch_of(snapshot.to_dict()) if snapshot.exists else None
        if found is None or found.get("ended"):
            return None
        update: dict[str, Any] = {"check_at": check_at}
        if found.get("state") == State.GATHERED:
            update["submit_gen"] = int(found.get("submit_gen") or 0) + 1
        else:
            update["poll_seq"] = int(found.get("poll_seq") or 0) + 1
        tx.update(snapshot.reference, update)
        return model_batch_of({**found, **update})

    return transactions.run(db, body)


def mark(db: firestore.Client, mb_id: str, fields: dict[str, Any]) -> None:
    """Record a fact about the model batch (Gemini's state, a cancel asked)."""
    ref(db, mb_id).update(fields)


def end(
    db: firestore.Client, mb_id: str, now: dt.datetime, model_state: str | None, outcome: dict[str, int]
) -> None:
    """Its jobs have all gone where they go: nothing more to look at."""
    ref(db, mb_id).update({"state": State.ENDED, "ended": True, "ended_at": now, "model_state": model_state,
                           "outcome": outcome})  # fmt: skip
