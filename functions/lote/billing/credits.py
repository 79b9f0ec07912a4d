"""Every rule that moves credits: admission (debit + in-flight limit), refunds, retries, grants.

Jobs, batches and the admin API call these; none of them does credit arithmetic itself. The
arithmetic is pure functions at the top (unit- and property-tested); the functions below them
stage the ledger entries inside the caller's transaction or optimistic batch, so a credit moves
in the same commit as the state change that causes it, and every entry id is derived from that
cause (one debit per job, one refund per batch completion, one debit per batch retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


def single_refund(job: Mapping[str, Any]) -> int:
    """What a failed or canceled job gives back on its own: its price, unless it is a batch item
    (items are refunded by their batch when it settles, one entry instead of one per item)."""
    price = int(job.get("price") or 0)
    return 0 if price <= 0 or job.get("batch_id") else price


def end_refund(job: Mapping[str, Any], final: Mapping[str, Any], unpaid: bool) -> int:
    """What a single gives back as it ends in `final`: its price when it failed or was canceled
    (`unpaid`), the discount of a reused image when it succeeded with one (batch items are settled by
    their batch)."""
    if unpaid:
        return single_refund(job)
    return 0 if job.get("batch_id") else max(0, int(final.get("discount") or 0))


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


def dispute_take(credits: int, amount: int, disputed: int, taken_elsewhere: int) -> int:
    """Credits a chargeback of `disputed` (of a charge of `amount` that bought `credits`) takes back:
    proportional, rounded against the buyer, never more than what refunds and other disputes of the
    same payment (`taken_elsewhere`) left."""
    return max(0, min(clawback_target(credits, amount, disputed), credits - max(0, taken_elsewhere)))


# Dispute statuses: funds withdrawn (a chargeback) versus an inquiry (`warning_*`: no money moves),
# and the closed ones that give the money back.
DISPUTE_RETURNED = frozenset({"won", "warning_closed", "prevented"})
DISPUTE_FINAL = DISPUTE_RETURNED | {"lost"}


def dispute_withdraws(status: str, event_type: str) -> bool:
    """Whether a dispute in `status` (seen in an event of `event_type`) has taken the money: every
    dispute does but an inquiry, and an inquiry does once its funds are withdrawn."""
    return event_type == "charge.dispute.funds_withdrawn" or not status.startswith("warning_")


# --- Entries ---------------------------------------------------------------------------------


def job_debit(job_id: str, price: int) -> Entry:
    """A single generation's debit, entered with the job."""
    return Entry(f"debit-{job_id}", -price, "debit", job_id)


def batch_debit(batch_id: str, price: int) -> Entry:
    """A batch's debit for all its items, entered with the batch."""
    return Entry(f"debit-{batch_id}", -price, "debit", batch_id)


@dataclass(frozen=True)
class Admission:
    """A debit to enter in the same commit as what it pays for; for a single generation
    (`max_in_flight` set) also its in-flight slot, both taken from one purse slice of `slices`."""

    tenant_id: str
    debit: Entry
    max_in_flight: int | None = None  # single generations: also check the in-flight limit
    slices: int = 1
    # Ids of the account events (a low balance) the commit staged: the caller enqueues them after it.
    events: list[str] = field(default_factory=list)


def admit(batch: firestore.WriteBatch, db: firestore.Client, admission: Admission) -> int | None:
    """Into an optimistic batch: 402 or 429 (raised, nothing written), else the debit. Returns the
    purse slice a single was admitted through (its end gives back there), None for a batch.

    A single touches one slice of its tenant's purse (billing/purse.py), never the tenant
    document on the common path, so a tenant's concurrent end users do not serialize. A batch's
    debit is entered on the tenant document; when that alone cannot pay it, the slices' credits are
    gathered into it in the same commit (preconditioned on each)."""
    from lote.billing import purse

    if admission.max_in_flight is not None:
        index = purse.take(batch, db, admission.tenant_id, -admission.debit.delta, admission.max_in_flight,
                           admission.slices, admission.events)  # fmt: skip
        ledger.record(batch, db, admission.tenant_id, admission.debit)
        return index
    if not admission.debit.delta:
        precheck(db, admission)  # free work writes nothing on the tenant, but a debt refuses it
        return None
    tenant = ledger.tenant_ref(db, admission.tenant_id).get()
    slices = purse.read_slices(db, admission.tenant_id)  # read once: for the check and the entry
    held = sum(s.credits for s, _ in slices.values())
    require_funds(ledger.balance(tenant) + held, -admission.debit.delta)
    also = _charge_room(tenant, slices, -admission.debit.delta)
    stored = ledger.add(batch, db, tenant, admission.debit, slices, also, admission.events)
    _require_paid(stored, admission.debit)
    return None


def _charge_room(tenant: firestore.DocumentSnapshot, slices: ledger.Slices, price: int) -> dict[str, Any]:
    """A charge of `price` on the tenant document under its spend caps: the spend counts it leaves
    (fields to write with the entry), or 403 `spend_cap_reached`. The room purse slices hold for
    today is not the tenant document's to charge: precheck() gathered it back (spend.make_room)
    when it was needed; if singles took it meanwhile, the answer is the cap's."""
    from lote import timeutil
    from lote.billing import spend as spend_rules

    today = spend_rules.day_key(timeutil.now())
    found = spend_rules.spend_of(tenant.to_dict() or {}, today)
    if found is None:
        return {}
    if found.left < price:
        held = sum(s.room_on(today) for s, _ in slices.values())
        found.refuse(price, held)
        raise spend_rules.SpendCapReached(  # the room exists but singles hold it: rare, at the edge
            "the spend cap's room is held by single generations in progress; retry",
            {"required": price, "left": found.left, "held": held},
        )
    return {"spend": found.lend(price).fields()}


def _require_paid(stored: dict[str, Any], debit: Entry) -> None:
    """402 when a debit entered on the tenant document left it in debt: the slices gathered for it
    were spent meanwhile (raised before the commit, so nothing is written)."""
    after = stored.get("balance_after")
    if after is not None and after < 0:
        require_funds(after - debit.delta, -debit.delta)


def precheck(db: firestore.Client, admission: Admission) -> None:
    """The admission rule against the whole purse, writing nothing: 402 or 429. Called alone before
    work the commit would waste (uploads, manifest validation); admit() checks again."""
    from lote.billing import purse

    found = purse.read(db, admission.tenant_id)
    whole = found if found is not None else purse.Purse(0, 0)
    price = -admission.debit.delta
    if admission.max_in_flight is not None:
        purse.refuse(whole, price, admission.max_in_flight)
        return
    require_funds(whole.balance, price)
    if whole.spend is not None and price:
        whole.spend.refuse(price, whole.room_held)
        if whole.spend.left < price:  # the slices hold the room this charge needs: gather it
            from lote.billing import spend

            spend.make_room(db, admission.tenant_id, price)


def end_job(
    commit: Any, db: firestore.Client, job_id: str, job: Mapping[str, Any], refund: int, locked: bool
) -> None:
    """Into the commit that ends a job, before its writes: a single generation's in-flight slot
    back, and `refund` (end_refund: its price when it failed or was canceled, a reused image's
    discount), once.

    A single admitted through a purse slice gets both back there as increments (the commit is
    already guarded by the job's own precondition or lock, which makes it happen once); the ledger
    entry is created only if absent. One admitted before purses existed refunds to the tenant
    document: in a transaction (`locked`) its read of the tenant guards the balance; in an
    optimistic batch the balance is preconditioned on the tenant's update time."""
    from lote.billing import purse

    entry = Entry(f"refund-{job_id}", refund, "refund", job_id)
    index = job.get("purse_slice")
    if index is not None and not job.get("batch_id"):
        purse.give_back(commit, db, job["tenant_id"], int(index), refund)
        if refund:
            ledger.record(commit, db, job["tenant_id"], entry)
        return
    if not refund:
        return
    if locked:
        ledger.stage(commit, db, ledger.tenant_ref(db, job["tenant_id"]).get(transaction=commit), entry)
    else:
        ledger.enter(commit, db, job["tenant_id"], entry)


def refund_batch(
    tx: firestore.Transaction,
    db: firestore.Client,
    batch_id: str,
    batch: Mapping[str, Any],
    succeeded_price: int,
    completion: int,
) -> int:
    """Inside the transaction that finishes a batch, before its writes: refund what the items that
    did not succeed cost, once per completion. Returns the batch's `refunded` after it."""
    charged, refunded = int(batch.get("charged", 0)), int(batch.get("refunded", 0))
    owed = batch_refund(charged, refunded, succeeded_price)
    if not owed:
        return refunded
    tenant = ledger.tenant_ref(db, batch["tenant_id"]).get(transaction=tx)
    ledger.stage(tx, db, tenant, Entry(f"refund-{batch_id}-{completion}", owed, "refund", batch_id))
    return refunded + owed


def charge_retry(
    tx: firestore.Transaction,
    db: firestore.Client,
    batch_id: str,
    batch: Mapping[str, Any],
    price: int,
    gen: int,
) -> int:
    """Inside the transaction that reopens a batch: 402 unless the balance covers the retried
    items, else their debit (one per retry generation). Returns the batch's `charged` after it."""
    charged = int(batch.get("charged", 0)) + price
    if not price:
        return charged
    from lote.billing import purse

    tenant = ledger.tenant_ref(db, batch["tenant_id"]).get(transaction=tx)
    debit = Entry(f"debit-{batch_id}-r{gen}", -price, "debit", batch_id)
    slices = purse.read_slices(db, batch["tenant_id"])
    require_funds(ledger.balance(tenant) + sum(s.credits for s, _ in slices.values()), price)
    _require_paid(ledger.stage(tx, db, tenant, debit, _charge_room(tenant, slices, price)), debit)
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
