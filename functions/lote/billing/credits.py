"""Every rule that moves credits: admission (debit + in-flight limit), refunds, retries, grants.

Jobs, batches and the admin API call these; none of them does credit arithmetic itself. The
arithmetic is pure functions at the top (unit- and property-tested); the functions below them
stage the ledger entries inside the caller's transaction or optimistic batch, so a credit moves
in the same commit as the state change that causes it, and every entry id is derived from that
cause (one debit per job, one refund per batch completion, one debit per batch retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lote.billing import ledger
from lote.billing.ledger import Entry
from lote.errors import LoteError

if TYPE_CHECKING:
    from google.cloud import firestore


class InsufficientCredits(LoteError):
    """The balance does not cover the request; nothing was written."""

    status, code = 402, "insufficient_credits"


# --- The arithmetic ---------------------------------------------------------------------------


def require_funds(balance: int, price: int) -> None:
    """402 unless `balance` covers `price` (a negative balance covers nothing, not even free work)."""
    if balance < price or balance < 0:
        raise InsufficientCredits(
            f"this needs {price} credits; the balance is {balance}",
            {"required": price, "available": balance},
        )


def single_refund(job: dict[str, Any]) -> int:
    """What a failed or canceled job gives back on its own: its price, unless it is a batch item
    (items are refunded by their batch when it settles, one entry instead of one per item)."""
    price = int(job.get("price") or 0)
    return 0 if price <= 0 or job.get("batch_id") else price


def batch_refund(charged: int, refunded: int, succeeded_price: int) -> int:
    """What a finishing batch gives back: everything charged beyond the items that succeeded and
    what earlier completions already refunded (never negative)."""
    return max(0, charged - refunded - succeeded_price)


def clawback_target(credits: int, amount: int, amount_refunded: int) -> int:
    """Credits to take back after Stripe refunded `amount_refunded` of a charge of `amount` that
    bought `credits`: proportional, rounded against the buyer, never more than was bought."""
    if amount <= 0:
        return 0
    return min(credits, -(-credits * max(0, amount_refunded) // amount))


# --- Entries ---------------------------------------------------------------------------------


def job_debit(job_id: str, price: int) -> Entry:
    """A single generation's debit, entered with the job."""
    return Entry(f"debit-{job_id}", -price, "debit", job_id)


def batch_debit(batch_id: str, price: int) -> Entry:
    """A batch's debit for all its items, entered with the batch."""
    return Entry(f"debit-{batch_id}", -price, "debit", batch_id)


@dataclass(frozen=True)
class Admission:
    """A debit to enter in the same commit as what it pays for, and the in-flight limit to check."""

    tenant_id: str
    debit: Entry
    max_in_flight: int | None = None  # single generations: also check the in-flight limit


def admit(batch: firestore.WriteBatch, db: firestore.Client, admission: Admission) -> None:
    """Into an optimistic batch: 402 or 429 (raised, nothing written), else the debit and balance.

    The balance is written even when the work is free: its update-time precondition is what
    serializes racing submissions, so the in-flight count is exact.
    """
    tenant = precheck(db, admission)
    if admission.debit.delta:
        ledger.add(batch, db, tenant, admission.debit)
    else:
        ledger.touch(batch, db, tenant)


def precheck(db: firestore.Client, admission: Admission) -> firestore.DocumentSnapshot:
    """The admission rule, writing nothing: 402 or 429, else the tenant as read. Also called alone
    before work the commit would waste (uploads, manifest validation); admit() checks again."""
    from lote.tenants import limits

    tenant = ledger.tenant_ref(db, admission.tenant_id).get()
    require_funds(ledger.balance(tenant), -admission.debit.delta)
    if admission.max_in_flight is not None:
        # Counted after the tenant is read: a submission that commits in between changes the
        # tenant's update time, so admit()'s commit fails its precondition and counts again.
        limits.require_room(limits.singles_in_flight(db, admission.tenant_id), admission.max_in_flight)
    return tenant


def refund_job(commit: Any, db: firestore.Client, job_id: str, job: dict[str, Any], locked: bool) -> None:
    """Into the commit that fails or cancels a job, before its writes: give a single generation's
    price back, once. In a transaction (`locked`) its read of the tenant guards the balance; in an
    optimistic batch the balance is preconditioned on the tenant's update time and the entry is
    created only if absent."""
    credits = single_refund(job)
    if not credits:
        return
    entry = Entry(f"refund-{job_id}", credits, "refund", job_id)
    if locked:
        ledger.stage(commit, db, ledger.tenant_ref(db, job["tenant_id"]).get(transaction=commit), entry)
    else:
        ledger.enter(commit, db, job["tenant_id"], entry)


def refund_batch(
    tx: firestore.Transaction,
    db: firestore.Client,
    batch_id: str,
    batch: dict[str, Any],
    succeeded_price: int,
    completion: int,
) -> dict[str, Any]:
    """Inside the transaction that finishes a batch, before its writes: refund what the items that
    did not succeed cost, once per completion. Returns the batch fields to update."""
    charged, refunded = int(batch.get("charged", 0)), int(batch.get("refunded", 0))
    owed = batch_refund(charged, refunded, succeeded_price)
    if not owed:
        return {}
    tenant = ledger.tenant_ref(db, batch["tenant_id"]).get(transaction=tx)
    ledger.stage(tx, db, tenant, Entry(f"refund-{batch_id}-{completion}", owed, "refund", batch_id))
    return {"refunded": refunded + owed}


def charge_retry(
    tx: firestore.Transaction,
    db: firestore.Client,
    batch_id: str,
    batch: dict[str, Any],
    price: int,
    gen: int,
) -> dict[str, Any]:
    """Inside the transaction that reopens a batch: 402 unless the balance covers the retried
    items, else their debit (one per retry generation). Returns the batch fields to update."""
    charged = {"charged": int(batch.get("charged", 0)) + price}
    if not price:
        return charged
    tenant = ledger.tenant_ref(db, batch["tenant_id"]).get(transaction=tx)
    require_funds(ledger.balance(tenant), price)
    ledger.stage(tx, db, tenant, Entry(f"debit-{batch_id}-r{gen}", -price, "debit", batch_id))
    return charged


def opening_grant(batch: firestore.WriteBatch, db: firestore.Client, tenant_id: str, credits: int) -> None:
    """Into the batch that creates a tenant holding `credits`: the grant that explains them."""
    if credits:
        ledger.opening(
            batch, db, tenant_id, Entry("grant-initial", credits, "grant", tenant_id, "starting credits")
        )


def grant(
    db: firestore.Client, tenant_id: str, grant_id: str, credits: int, reason: str
) -> dict[str, Any] | None:
    """An operator's grant (negative to take credits away), entered once per grant id; None when the
    tenant does not exist."""
    return ledger.apply(db, tenant_id, Entry(f"grant-{grant_id}", credits, "grant", tenant_id, reason))
