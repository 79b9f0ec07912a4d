"""The ledger: `tenants/{id}/ledger/{entry}`; the tenant's `credits` always equals the sum of it.

Entry ids are deterministic from their cause (a grant request, a job, a Stripe event), so the same
cause can never be entered twice: applying an entry that exists returns it unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from lote import timeutil, transactions
from lote.tenants.store import TENANTS

if TYPE_CHECKING:
    from google.cloud import firestore

LEDGER = "ledger"
Reason = Literal["purchase", "debit", "refund", "grant", "clawback"]


def entry_ref(db: firestore.Client, tenant_id: str, entry_id: str) -> firestore.DocumentReference:
    """Where a ledger entry lives."""
    return db.collection(TENANTS).document(tenant_id).collection(LEDGER).document(entry_id)


def entry(delta: int, reason: Reason, reference: str, balance_after: int, note: str = "") -> dict[str, Any]:
    """The document of a ledger entry."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError("ledger deltas are whole credits")
    return {
        "delta": delta,
        "reason": reason,
        "reference": reference,
        "note": note,
        "balance_after": balance_after,
        "created_at": timeutil.now(),
    }


def stage(
    tx: firestore.Transaction,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    entry_id: str,
    delta: int,
    reason: Reason,
    reference: str,
    note: str = "",
) -> dict[str, Any]:
    """Inside a transaction that already read `tenant`: write the entry and the new balance.

    Returns the entry; an entry that already exists is returned as it is and nothing is written.
    """
    existing = entry_ref(db, tenant.id, entry_id).get(transaction=tx)
    if existing.exists:
        return existing.to_dict() or {}
    # The transaction's own read of the tenant guards the balance: no precondition needed.
    return _write(tx, db, tenant, entry_id, delta, reason, reference, note, None)


def apply(
    db: firestore.Client,
    tenant_id: str,
    entry_id: str,
    delta: int,
    reason: Reason,
    reference: str,
    note: str = "",
) -> dict[str, Any] | None:
    """One entry on its own, optimistically: the balance is written with a precondition on the update
    time that was read, and a lost race reads again. None when the tenant does not exist."""
    ref = entry_ref(db, tenant_id, entry_id)

    def build(batch: firestore.WriteBatch) -> tuple[dict[str, Any] | None, bool]:
        existing = ref.get()
        if existing.exists:
            return existing.to_dict() or {}, False
        tenant = db.collection(TENANTS).document(tenant_id).get()
        if not tenant.exists:
            return None, False
        return add(batch, db, tenant, entry_id, delta, reason, reference, note), True

    return transactions.optimistic(db, build)


def add(
    batch: firestore.WriteBatch,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    entry_id: str,
    delta: int,
    reason: Reason,
    reference: str,
    note: str = "",
) -> dict[str, Any]:
    """Into an optimistic batch (transactions.optimistic): the entry, created only if absent, and
    the new balance, guarded by the update time of the `tenant` snapshot that was read."""
    option = db.write_option(last_update_time=tenant.update_time)
    return _write(batch, db, tenant, entry_id, delta, reason, reference, note, option)


def _write(
    writer: firestore.Transaction | firestore.WriteBatch,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    entry_id: str,
    delta: int,
    reason: Reason,
    reference: str,
    note: str,
    option: Any,
) -> dict[str, Any]:
    balance = int((tenant.to_dict() or {}).get("credits", 0)) + delta
    record = entry(delta, reason, reference, balance, note)
    writer.update(tenant.reference, {"credits": balance}, option=option)
    writer.create(entry_ref(db, tenant.id, entry_id), record)
    return record


def page(
    db: firestore.Client, tenant_id: str, size: int, after: str | None
) -> list[firestore.DocumentSnapshot] | None:
    """Entries newest first, after the entry id `after`; None when there is no such entry."""
    from google.cloud import firestore as fs

    collection = db.collection(TENANTS).document(tenant_id).collection(LEDGER)
    query = collection.order_by("created_at", direction=fs.Query.DESCENDING).order_by(
        "__name__", direction=fs.Query.DESCENDING
    )
    if after:
        last = collection.document(after).get()
        if not last.exists:
            return None
        query = query.start_after(last)
    return list(query.limit(size).stream())
