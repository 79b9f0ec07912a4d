"""Webhook deliveries (`webhook_deliveries/{msg_…}`) and tenants' signing secrets.

A delivery is created in the commit of the state change it reports, with an id derived
from that change, so each change produces exactly one event. Delivery attempts hold a short lease,
so a task delivered twice POSTs once.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from lote import bulk, leases, retention, timeutil, transactions
from lote.errors import Conflict
from lote.statuses import DeliveryStatus
from lote.tenants.store import TENANTS
from lote.webhooks import signing
from lote.webhooks.documents import DeliveryAttempt, DeliveryDoc, delivery_of

if TYPE_CHECKING:
    from google.cloud import firestore

DELIVERIES = "webhook_deliveries"


class DeliveryPending(Conflict):
    """The delivery is still being attempted: it cannot be redelivered yet."""

    code = "delivery_pending"


MAX_ATTEMPTS_KEPT = 100
ROTATION_OVERLAP = dt.timedelta(hours=24)
# Composite indexes of the queries below (firestore.indexes.json must hold each; a test checks).
INDEXES = [
    (DELIVERIES, ("tenant_id", "created_at")),
    (DELIVERIES, ("tenant_id", "status", "created_at")),
    (DELIVERIES, ("enqueued", "cycle_started_at")),
    (DELIVERIES, ("status", "task_check_at")),
]


def ref(db: firestore.Client, delivery_id: str) -> firestore.DocumentReference:
    """The delivery's document."""
    return db.collection(DELIVERIES).document(delivery_id)


def document(tenant_id: str, url: str, kind: str, subject: str, body: str) -> DeliveryDoc:
    """A new pending delivery."""
    now = timeutil.now()
    return {
        "tenant_id": tenant_id, "type": kind, "subject": subject, "url": url, "body": body,
        "status": DeliveryStatus.PENDING, "attempts": [], "attempt_count": 0, "created_at": now,
        "cycle_started_at": now, "delivered_at": None, "failed_at": None, "enqueued": False,
        "task_gen": 0, "lease_until": None, "expires_at": retention.expires_at(now),
    }  # fmt: skip


def stage(
    writer: firestore.Transaction | firestore.WriteBatch,
    db: firestore.Client,
    delivery_id: str,
    tenant_id: str,
    url: str,
    kind: str,
    subject: str,
    body: str,
) -> None:
    """Into the commit of a state change: the event and its pending delivery (created only if absent)."""
    writer.create(ref(db, delivery_id), dict(document(tenant_id, url, kind, subject, body)))


def mark_enqueued(db: firestore.Client, delivery_id: str, check_at: dt.datetime) -> None:
    """Record that the delivery's task exists; from `check_at` it may have run out of attempts."""
    ref(db, delivery_id).update({"enqueued": True, "task_check_at": check_at})


def push_check(db: firestore.Client, delivery_id: str, check_at: dt.datetime) -> None:
    """The delivery's task is alive: look again at `check_at`."""
    ref(db, delivery_id).update({"task_check_at": check_at})


def task_checks_due(db: firestore.Client, now: dt.datetime, limit: int) -> list[firestore.DocumentSnapshot]:
    """Pending deliveries whose task may have run out of attempts by now."""
    from google.cloud import firestore as fs

    query = (
        db.collection(DELIVERIES)
        .where(filter=fs.FieldFilter("status", "==", DeliveryStatus.PENDING))
        .where(filter=fs.FieldFilter("task_check_at", "<", now))
        .order_by("task_check_at")
        .limit(limit)
    )
    return list(query.stream())


def restart_lost(
    db: firestore.Client, delivery_id: str, gen: int, give_up_before: dt.datetime
) -> int | str | None:
    """A pending delivery whose task is gone without recording its end (the worker was down):
    `failed` once its cycle started before `give_up_before`, else a new task generation to enqueue.
    None if it moved on meanwhile."""

    def run(tx: firestore.Transaction) -> int | str | None:
        snapshot = ref(db, delivery_id).get(transaction=tx)
        doc = snapshot.to_dict() or {}
        now = timeutil.now()
        if doc.get("status") != DeliveryStatus.PENDING or int(doc.get("task_gen") or 0) != gen:
            return None
        if doc.get("lease_until") is not None and doc["lease_until"] > now:
            return None
        if doc["cycle_started_at"] < give_up_before:
            attempt = {"at": now, "status_code": None, "latency_ms": 0, "retry_count": None,
                       "error": "gave up: the delivery task ran out of attempts"}  # fmt: skip
            attempts = [*doc.get("attempts", []), attempt][-MAX_ATTEMPTS_KEPT:]
            failed = {"status": DeliveryStatus.FAILED, "failed_at": now, "lease_until": None}
            tx.update(snapshot.reference, {**failed, "attempts": attempts})
            return DeliveryStatus.FAILED
        tx.update(snapshot.reference, {"task_gen": gen + 1, "enqueued": False, "lease_until": None})
        return gen + 1

    result: int | str | None = transactions.run(db, run)
    return result


def claim(
    db: firestore.Client, delivery_id: str, gen: int, lease: dt.timedelta, check_at: dt.datetime
) -> leases.Claim:
    """Start an attempt: missing, finished or superseded → noop; another attempt live → busy. A
    delivery whose task was never recorded gets `check_at`, so the sweep watches it."""

    def judge(doc: dict[str, Any] | None, now: dt.datetime) -> leases.Claim | dict[str, Any]:
        if doc is None:
            return leases.noop("no such delivery")
        if doc["status"] != DeliveryStatus.PENDING:
            return leases.noop(f"delivery is {doc['status']}", doc)
        if gen != doc.get("task_gen", 0):
            return leases.noop("a redelivery superseded this task", doc)
        if leases.held(doc, now):
            return leases.busy("another attempt is delivering it", doc)
        update = {"lease_until": now + lease, "enqueued": True}
        return update if doc.get("task_check_at") else {**update, "task_check_at": check_at}

    return leases.take(db, ref(db, delivery_id), judge)


def record(
    db: firestore.Client, delivery_id: str, delivery: DeliveryDoc, attempt: DeliveryAttempt, status: str
) -> None:
    """Append an attempt (the lease holder is the only writer) and set the delivery's status."""
    attempts = [*delivery.get("attempts", []), attempt][-MAX_ATTEMPTS_KEPT:]
    count = int(delivery.get("attempt_count", 0)) + 1
    update: DeliveryDoc = {
        "attempts": attempts,
        "attempt_count": count,
        "status": status,
        "lease_until": None,
    }
    if status == DeliveryStatus.DELIVERED:
        update["delivered_at"] = attempt["at"]
    if status == DeliveryStatus.FAILED:
        update["failed_at"] = attempt["at"]
    ref(db, delivery_id).update(dict(update))


def redeliver(db: firestore.Client, delivery_id: str, tenant_id: str) -> DeliveryDoc | None:
    """Start a new delivery cycle of a finished delivery; None when not the tenant's.

    Raises DeliveryPending (409) while a cycle is still running.
    """

    def run(tx: firestore.Transaction) -> DeliveryDoc | None:
        snapshot = ref(db, delivery_id).get(transaction=tx)
        doc = delivery_of(snapshot.to_dict()) if snapshot.exists else None
        if doc is None or doc.get("tenant_id") != tenant_id:
            return None
        if doc["status"] == DeliveryStatus.PENDING:
            raise DeliveryPending(f"delivery {delivery_id} is still being attempted", {"id": delivery_id})
        update: DeliveryDoc = {"status": DeliveryStatus.PENDING, "task_gen": int(doc.get("task_gen", 0)) + 1,
                  "enqueued": False,
                  "cycle_started_at": timeutil.now(), "failed_at": None, "lease_until": None,
                  "expires_at": retention.expires_at(timeutil.now())}  # fmt: skip
        tx.update(snapshot.reference, dict(update))
        return {**doc, **update}

    return transactions.run(db, run)


def page(
    db: firestore.Client, tenant_id: str, status: str | None, size: int, after: str | None
) -> list[firestore.DocumentSnapshot] | None:
    """A tenant's deliveries, newest first, after the delivery id `after` (None: no such delivery)."""
    from google.cloud import firestore as fs

    collection = db.collection(DELIVERIES)
    query = collection.where(filter=fs.FieldFilter("tenant_id", "==", tenant_id))
    if status is not None:
        query = query.where(filter=fs.FieldFilter("status", "==", status))
    query = query.order_by("created_at", direction=fs.Query.DESCENDING).order_by(
        "__name__", direction=fs.Query.DESCENDING
    )
    if after:
        last = collection.document(after).get()
        if not last.exists or (last.to_dict() or {}).get("tenant_id") != tenant_id:
            return None
        query = query.start_after(last)
    return list(query.limit(size).stream())


def unenqueued_before(
    db: firestore.Client, cutoff: dt.datetime, limit: int
) -> list[firestore.DocumentSnapshot]:
    """Deliveries whose task was never confirmed, in a cycle started before `cutoff`."""
    return bulk.flagged_before(db, DELIVERIES, "enqueued", False, "cycle_started_at", cutoff, limit)


# --- signing secrets on the tenant document --------------------------------------------------


def secrets(db: firestore.Client, tenant_id: str) -> dict[str, Any]:
    """The tenant's secrets {current, previous, rotated_at}, creating the first one if needed."""
    tenant_ref = db.collection(TENANTS).document(tenant_id)

    def build(batch: firestore.WriteBatch) -> tuple[dict[str, Any], bool]:
        snapshot = tenant_ref.get()
        found = (snapshot.to_dict() or {}).get("webhook_secrets")
        if found:
            return dict(found), False
        created = {"current": signing.new_secret(), "previous": None, "rotated_at": None}
        batch.update(tenant_ref, {"webhook_secrets": created},
                     option=db.write_option(last_update_time=snapshot.update_time))  # fmt: skip
        return created, True

    return transactions.optimistic(db, build)


def rotate(db: firestore.Client, tenant_id: str) -> dict[str, Any]:
    """A new current secret; the old one keeps signing for ROTATION_OVERLAP."""
    tenant_ref = db.collection(TENANTS).document(tenant_id)
    secrets(db, tenant_id)

    def build(batch: firestore.WriteBatch) -> tuple[dict[str, Any], bool]:
        snapshot = tenant_ref.get()
        old = (snapshot.to_dict() or {})["webhook_secrets"]
        rotated = {"current": signing.new_secret(), "previous": old["current"], "rotated_at": timeutil.now()}
        batch.update(tenant_ref, {"webhook_secrets": rotated},
                     option=db.write_option(last_update_time=snapshot.update_time))  # fmt: skip
        return rotated, True

    return transactions.optimistic(db, build)


def signing_secrets(found: dict[str, Any], now: dt.datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during the overlap."""
    live = [found["current"]]
    if found.get("previous") and found.get("rotated_at") and now - found["rotated_at"] < ROTATION_OVERLAP:
        live.append(found["previous"])
    return live
