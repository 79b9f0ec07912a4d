"""Lanes (`lanes/{id}`) and held jobs: where work waits until the dispatcher releases it.

A held job is queued with `hold` set to its lane and no task: the dispatcher creates its task when
it releases it. The rule that keeps held work findable: a job is held only together with its lane
being marked active (in the same commit, or for a batch's items just after: fanout.hold), and a
lane is retired only by a transaction that finds no held job in it. The dispatcher reads only
active lanes; the audit checks every held job's lane.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lote import bulk, timeutil, transactions
from lote.dispatch.share import Lane, Tier

if TYPE_CHECKING:
    from google.cloud import firestore
    from google.cloud.firestore import Transaction, WriteBatch

LANES = "lanes"
JOBS = "jobs"  # jobs/store.py's collection: importing it from there would close a cycle through jobs/views.py
# Composite indexes of the queries below; firestore.indexes.json must hold each (a test checks).
INDEXES = [(JOBS, ("hold", "hold_rank"))]
REHELD_RANK = -1  # a job held again after a quota error goes out before the lane's untouched ones


# The pool of work that goes through Gemini's batch mode (batchmode/): its lanes are read by the
# gatherer, not by an online dispatcher, and a job in it has `path` "batch_mode".
BATCH_MODE = "batch-mode"
# batchmode/store.py's collection, named here for the job views (importing batchmode from jobs would
# close a cycle: batchmode lands its lines through jobs).
MODEL_BATCHES = "model_batches"


def batch_lane(batch_id: str, batch_mode: bool = False) -> str:
    """The lane of a batch's items: online, or those waiting for a model batch job."""
    return f"batchmode-{batch_id}" if batch_mode else f"batch-{batch_id}"


def lane_of(job: Mapping[str, Any]) -> str:
    """The lane a job waits in when held: its batch's (online or batch mode), or its tenant's
    singles lane."""
    if job.get("batch_id"):
        return batch_lane(job["batch_id"], job.get("path") == "batch_mode")
    return f"single-{job['tenant_id']}"


def pool_of(job: Mapping[str, Any], online: str) -> str:
    """The pool whose lanes a held job waits in: batch mode's, or the `online` image pool."""
    return BATCH_MODE if job.get("path") == "batch_mode" else online


def ref(db: firestore.Client, lane_id: str) -> firestore.DocumentReference:
    """The lane's document."""
    return db.collection(LANES).document(lane_id)


def document(
    pool: str, tenant_id: str, tier: Tier, batch_id: str | None, at: dt.datetime | None = None
) -> dict[str, Any]:
    """An active lane's fields (written with merge: activating twice is activating once)."""
    return {
        "pool": pool, "tenant_id": tenant_id, "tier": str(tier), "batch_id": batch_id,
        "active": True, "activated_at": at or timeutil.now(),
    }  # fmt: skip


def hold_fields(lane_id: str, rank: int) -> dict[str, Any]:
    """The fields that make a queued job held in `lane_id`: no task, nothing for the sweep to check."""
    return {"hold": lane_id, "hold_rank": rank, "enqueued": None, "task_check_at": None, "lease_until": None}


def activate(
    db: firestore.Client, lane_id: str, doc: dict[str, Any], writer: Transaction | WriteBatch | None = None
) -> None:
    """Mark the lane active (a blind merge: inside `writer`'s commit when given)."""
    if writer is not None:
        writer.set(ref(db, lane_id), doc, merge=True)
    else:
        ref(db, lane_id).set(doc, merge=True)


ACTIVE_READ_LIMIT = 1000


def active(
    db: firestore.Client, pool: str, limit: int = ACTIVE_READ_LIMIT, after: str | None = None
) -> list[Lane]:
    """The pool's active lanes in id order (after the lane id `after`, when given), at most `limit`."""
    from google.cloud.firestore import FieldFilter
    from google.cloud.firestore_v1.field_path import FieldPath

    query = (
        db.collection(LANES)
        .where(filter=FieldFilter("active", "==", True))
        .where(filter=FieldFilter("pool", "==", pool))
        .order_by(FieldPath.document_id())
    )
    if after is not None:
        query = query.start_after({FieldPath.document_id(): ref(db, after)})
    found = []
    for snapshot in query.limit(limit).stream():
        doc = snapshot.to_dict() or {}
        tier = Tier(doc.get("tier", Tier.STANDARD))
        found.append(Lane(snapshot.id, str(doc.get("tenant_id")), tier, doc.get("activated_at")))
    return found


def round_of_active(
    db: firestore.Client, pool: str, after: str | None, limit: int = ACTIVE_READ_LIMIT
) -> tuple[list[Lane], str | None]:
    """A window's share of a round over the pool's active lanes: the next `limit` after `after`
    (wrapping to the first), and where the next window goes on (None: from the first). With more
    active lanes than one read takes (100,000 tenants), always reading the first `limit` would never
    release the rest; each lane is now seen at least once every ceil(active / limit) windows."""
    page = active(db, pool, limit, after)
    if len(page) < limit and after is not None:
        seen = {lane.id for lane in page}
        page += [lane for lane in active(db, pool, limit - len(page)) if lane.id not in seen]
    return page, page[-1].id if len(page) >= limit else None


def _held_query(db: firestore.Client, lane_id: str) -> Any:
    from google.cloud.firestore import FieldFilter

    return db.collection(JOBS).where(filter=FieldFilter("hold", "==", lane_id)).order_by("hold_rank")


def held(db: firestore.Client, lane_id: str, limit: int) -> list[firestore.DocumentSnapshot]:
    """The lane's next `limit` held jobs, in release order."""
    return list(_held_query(db, lane_id).limit(limit).stream())


def count_held(db: firestore.Client, lane_id: str, cap: int = 100_000) -> int:
    """How many jobs the lane holds (count(), up to `cap`)."""
    return bulk.count(_held_query(db, lane_id).limit(cap))


def retire(db: firestore.Client, lane_id: str) -> bool:
    """Deactivate a lane that holds nothing, checked in the transaction that writes it (a job held
    meanwhile writes the lane in its own commit: either this transaction sees the job held, or
    that write waits for this one's lock and marks the lane active again)."""

    def run(tx: Transaction) -> bool:
        snapshot = ref(db, lane_id).get(transaction=tx)
        if not snapshot.exists or not (snapshot.to_dict() or {}).get("active"):
            return False
        if list(_held_query(db, lane_id).limit(1).stream(transaction=tx)):
            return False
        tx.update(snapshot.reference, {"active": False, "retired_at": timeutil.now()})
        return True

    return transactions.run(db, run)


def lane_states(db: firestore.Client, lane_ids: set[str]) -> dict[str, bool]:
    """Whether each lane is active (missing lanes are not)."""
    refs = [ref(db, lane_id) for lane_id in sorted(lane_ids)]
    return {s.id: bool(s.exists and (s.to_dict() or {}).get("active")) for s in db.get_all(refs)}
