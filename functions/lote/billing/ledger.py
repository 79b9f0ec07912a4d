"""The ledger: `tenants/{id}/ledger/{entry}`; the tenant's balance (its document's `credits` plus
its purse slices', billing/purse.py) always equals the sum of it.

Entry ids are deterministic from their cause (a grant request, a job, a Stripe event), so the same
cause can never be entered twice: applying an entry that exists returns it unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lote import timeutil, transactions

if TYPE_CHECKING:
    from google.cloud import firestore

# The tenant documents: billing owns their `credits` (and, through the purse, `slots_lent`);
# the rest of a tenant is tenants/'s. tenants/store.py names the collection with this.
TENANTS = "tenants"

LEDGER = "ledger"
# clawback: a Stripe refund takes back what it refunded; dispute: a chargeback takes back what was
# disputed; reinstated: a dispute won (or a refund that failed) gives it back.
# A tenant's purse slices as purse.read_slices returns them: index → (slice, its snapshot).
Slices = dict[int, tuple[Any, Any]]
Reason = Literal["purchase", "debit", "refund", "grant", "clawback", "dispute", "reinstated"]


@dataclass(frozen=True)
class Entry:
    """One change of a balance: its id (derived from its cause), signed whole credits, why, and
    the id of what caused it (a job, a batch, a Stripe event, a tenant)."""

    id: str
    delta: int
    reason: Reason
    reference: str
    note: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.delta, bool) or not isinstance(self.delta, int):
            raise TypeError("ledger deltas are whole credits")

    def document(self, balance_after: int | None) -> dict[str, Any]:
        """What is stored for the entry, given the balance it leaves as read when it was made (None
        for an entry made through one purse slice, which reads no other part of the balance)."""
        return {
            "delta": self.delta,
            "reason": self.reason,
            "reference": self.reference,
            "note": self.note,
            "balance_after": balance_after,
            "created_at": timeutil.now(),
        }


def tenant_ref(db: firestore.Client, tenant_id: str) -> firestore.DocumentReference:
    """The document holding a tenant's balance."""
    return db.collection(TENANTS).document(tenant_id)


def balance(tenant: firestore.DocumentSnapshot) -> int:
    """The part of the balance the tenant document holds (0 for a tenant without one); the rest is
    in its purse slices."""
    return int((tenant.to_dict() or {}).get("credits", 0))


def entry_ref(db: firestore.Client, tenant_id: str, entry_id: str) -> firestore.DocumentReference:
    """Where a ledger entry lives."""
    return tenant_ref(db, tenant_id).collection(LEDGER).document(entry_id)


def opening(batch: firestore.WriteBatch, db: firestore.Client, tenant_id: str, entry: Entry) -> None:
    """Into the batch that creates a tenant whose balance is `entry.delta`: its first entry."""
    batch.create(entry_ref(db, tenant_id, entry.id), entry.document(entry.delta))


def stage(
    tx: firestore.Transaction,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    entry: Entry,
    also: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Inside a transaction that already read `tenant`: write the entry and the new balance (with
    `also`, more fields of the tenant document, such as the spend counts a charge leaves).

    Returns the stored entry; an entry that already exists is returned as it is and nothing is written.
    """
    existing = entry_ref(db, tenant.id, entry.id).get(transaction=tx)
    if existing.exists:
        return existing.to_dict() or {}
    # The transaction's own read of the tenant guards the balance: no precondition needed.
    return _write(tx, db, tenant, entry, None, locked=True, also=also)


def apply(db: firestore.Client, tenant_id: str, entry: Entry) -> dict[str, Any] | None:
    """One entry on its own, optimistically: the balance is written with a precondition on the update
    time that was read, and a lost race reads again. None when the tenant does not exist."""
    return transactions.optimistic(db, lambda batch: enter(batch, db, tenant_id, entry))


def enter(
    batch: firestore.WriteBatch, db: firestore.Client, tenant_id: str, entry: Entry
) -> tuple[dict[str, Any] | None, bool]:
    """Into an optimistic batch, once: (the stored entry, True) with the tenant's new balance
    (add()), or (the entry as it exists, False) and nothing written; (None, False) without the tenant."""
    existing = entry_ref(db, tenant_id, entry.id).get()
    if existing.exists:
        return existing.to_dict() or {}, False
    tenant = tenant_ref(db, tenant_id).get()
    if not tenant.exists:
        return None, False
    return add(batch, db, tenant, entry), True


def add(
    batch: firestore.WriteBatch,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    entry: Entry,
    slices: Slices | None = None,
    also: dict[str, Any] | None = None,
    events: list[str] | None = None,
) -> dict[str, Any]:
    """Into an optimistic batch (transactions.optimistic): the entry, created only if absent, and
    the new balance, guarded by the update time of the `tenant` snapshot that was read (and of
    each purse slice it gathers). `slices`: the tenant's purse slices, when the caller has read
    them already (purse.read_slices), so they are read once; `also`: more fields of the tenant
    document; `events`: where the ids of account events it stages go, for the caller to enqueue."""
    option = db.write_option(last_update_time=tenant.update_time)
    return _write(batch, db, tenant, entry, option, locked=False, slices=slices, also=also, events=events)


def record(batch: firestore.WriteBatch, db: firestore.Client, tenant_id: str, entry: Entry) -> dict[str, Any]:
    """Into the commit that moves `entry.delta` on a purse slice (billing/purse.py): the entry,
    created only if absent, so the commit fails if its cause was already entered."""
    stored = entry.document(None)
    batch.create(entry_ref(db, tenant_id, entry.id), stored)
    return stored


def _write(
    writer: firestore.Transaction | firestore.WriteBatch,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    entry: Entry,
    option: Any,
    locked: bool,
    slices: Slices | None = None,
    also: dict[str, Any] | None = None,
    events: list[str] | None = None,
) -> dict[str, Any]:
    from lote.billing import purse, spend

    current = balance(tenant)
    if entry.delta < 0 and current + entry.delta < 0:
        # The tenant document alone cannot pay it: the slices' credits come back first (a debit
        # checked against the whole balance, or a debt that the slices must not spend around).
        moved = purse.gather(writer, db, tenant, entry.delta, locked, None if locked else slices)
        after = current + moved + entry.delta
        total = after
    else:
        after = current + entry.delta
        # The slices are read apart from the commit: the balance this entry shows is as read.
        held = slices if slices is not None else purse.read_slices(db, tenant.id)
        total = after + sum(s.credits for s, _ in held.values())
    stored = entry.document(total)
    # The whole balance is at hand: a low-balance warning (or its re-arming) goes in the same write.
    fields = {"credits": after, **(also or {}), **spend.low_balance_fields(writer, db, tenant, total, events)}
    writer.update(tenant.reference, fields, option=option)
    writer.create(entry_ref(db, tenant.id, entry.id), stored)
    return stored


# summed(): entries of one reason over a time range (composite index on reason, created_at).
INDEXES = [(LEDGER, ("reason", "created_at"))]


def summed(
    db: firestore.Client,
    tenant_id: str,
    reason: Reason,
    start: dt.datetime,
    end: dt.datetime | None = None,
    transaction: Any = None,
) -> int:
    """The sum of a tenant's `reason` entries created in [start, end) (end None: up to now): one
    aggregation query, reading no entry (inside `transaction` when given, at its snapshot)."""
    from google.cloud.firestore import FieldFilter

    query = (
        tenant_ref(db, tenant_id).collection(LEDGER)
        .where(filter=FieldFilter("reason", "==", reason))
        .where(filter=FieldFilter("created_at", ">=", start))
    )  # fmt: skip
    if end is not None:
        query = query.where(filter=FieldFilter("created_at", "<", end))
    return int(query.sum("delta", alias="s").get(transaction=transaction)[0][0].value or 0)


def page(
    db: firestore.Client, tenant_id: str, size: int, after: str | None
) -> list[firestore.DocumentSnapshot] | None:
    """Entries newest first, after the entry id `after`; None when there is no such entry."""
    from google.cloud import firestore as fs

    collection = tenant_ref(db, tenant_id).collection(LEDGER)
    query = collection.order_by("created_at", direction=fs.Query.DESCENDING).order_by(
        "__name__", direction=fs.Query.DESCENDING
    )
    if after:
        last = collection.document(after).get()
        if not last.exists:
            return None
        query = query.start_after(last)
    return list(query.limit(size).stream())
