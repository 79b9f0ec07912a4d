"""Reuse records (`reuse/{tenant}:{fingerprint}`): the image made for a fingerprint, or the job
making it now. A cache: losing a record costs a model call, never an image or a credit, so it is
written after the job's own commit and never inside it."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from lote import transactions
from lote.reuse.rules import Found, Kind, judge, record_id

if TYPE_CHECKING:
    from google.cloud import firestore

REUSE = "reuse"
TRIES, DEADLINE_S = 20, 3.0  # a lookup's optimistic claim: then the job waits and looks again


def ref(db: firestore.Client, tenant_id: str, fp: str) -> firestore.DocumentReference:
    """The fingerprint's record."""
    return db.collection(REUSE).document(record_id(tenant_id, fp))


def claim(
    db: firestore.Client, tenant_id: str, fp: str, job_id: str, now: dt.datetime, lease: dt.timedelta
) -> Found:
    """Look the fingerprint up (rules.judge); when nothing usable is found and no other job makes
    it, this job becomes its maker until `now + lease`. Optimistic (the write is preconditioned on
    the record as read, or creates it): two identical jobs looking at once do not both become its
    maker, and neither waits on a lock (a batch's repeats are released together). Raises
    transactions.Contention when it loses every race."""
    document = ref(db, tenant_id, fp)

    def build(batch: firestore.WriteBatch) -> tuple[Found, bool]:
        snapshot = document.get()
        found = judge(snapshot.to_dict() if snapshot.exists else None, job_id, now)
        if found.kind is not Kind.GO:
            return found, False
        fields: dict[str, Any] = {"tenant_id": tenant_id, "owner": job_id, "owner_until": now + lease}
        if snapshot.exists:
            batch.update(document, fields, option=db.write_option(last_update_time=snapshot.update_time))
        else:
            batch.create(document, {**fields, "expires_at": now + lease})  # TTL: a maker that never ends
        return found, True

    return transactions.optimistic(db, build, TRIES, DEADLINE_S)


def record(
    db: firestore.Client,
    tenant_id: str,
    fp: str,
    job_id: str,
    output: dict[str, Any],
    quality: dict[str, Any] | None,
    now: dt.datetime,
    until: dt.datetime,
) -> None:
    """The image `job_id` delivered is the fingerprint's until `until` (its record deleted then by
    the TTL policy); the maker's claim ends."""
    ref(db, tenant_id, fp).set({
        "tenant_id": tenant_id, "source": job_id, "output": output, "quality": quality, "made_at": now,
        "until": until, "expires_at": until, "owner": None, "owner_until": None,
    }, merge=True)  # fmt: skip


def release(db: firestore.Client, tenant_id: str, fp: str, job_id: str) -> None:
    """`job_id` will not make the image (it failed or was canceled): the next identical job makes it
    instead of waiting out the claim."""
    _clear_if(db, ref(db, tenant_id, fp), "owner", job_id, {"owner": None, "owner_until": None})


def forget(db: firestore.Client, tenant_id: str, fp: str, source: str) -> None:
    """The image recorded from `source` is gone (deleted early): no job is sent to it again."""
    cleared = {"source": None, "output": None, "quality": None, "until": None}
    _clear_if(db, ref(db, tenant_id, fp), "source", source, cleared)


def _clear_if(
    db: firestore.Client, document: firestore.DocumentReference, name: str, value: str, fields: dict[str, Any]
) -> None:
    """Write `fields` if the record's `name` is still `value` (preconditioned on the record as read)."""

    def build(batch: firestore.WriteBatch) -> tuple[None, bool]:
        snapshot = document.get()
        if not snapshot.exists or (snapshot.to_dict() or {}).get(name) != value:
            return None, False
        batch.update(document, fields, option=db.write_option(last_update_time=snapshot.update_time))
        return None, True

    transactions.optimistic(db, build, TRIES, DEADLINE_S)
