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
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError("ledger deltas are whole credits")
    ref = entry_ref(db, tenant.id, entry_id)
    existing = ref.get(transaction=tx)
    if existing.exists:
        return existing.to_dict() or {}
    balance = int((tenant.to_dict() or {}).get("credits", 0)) + delta
    entry = {
        "delta": delta,
        "reason": reason,
        "reference": reference,
        "note": note,
        "balance_after": balance,
        "created_at": timeutil.now(),
    }
    tx.update(tenant.reference, {"credits": balance})
    tx.create(ref, entry)
    return entry


def apply(
    db: firestore.Client,
    tenant_id: str,
    entry_id: str,
    delta: int,
    reason: Reason,
    reference: str,
    note: str = "",
) -> dict[str, Any] | None:
    """One entry in its own transaction; None when the tenant does not exist."""
    from google.cloud import firestore as fs

    def run(tx: fs.Transaction) -> dict[str, Any] | None:
        tenant = db.collection(TENANTS).document(tenant_id).get(transaction=tx)
        if not tenant.exists:
            return None
        return stage(tx, db, tenant, entry_id, delta, reason, reference, note)

    result: dict[str, Any] | None = transactions.run(db, run, 20)
    return result


def page(
    db: firestore.Client, tenant_id: str, size: int, after: str | None
) -> list[firestore.DocumentSnapshot]:
    """Entries newest first, after the entry id `after`."""
    from google.cloud import firestore as fs

    collection = db.collection(TENANTS).document(tenant_id).collection(LEDGER)
    query = collection.order_by("created_at", direction=fs.Query.DESCENDING).order_by(
        "__name__", direction=fs.Query.DESCENDING
    )
    if after:
        last = collection.document(after).get()
        if last.exists:
            query = query.start_after(last)
    return list(query.limit(size).stream())
