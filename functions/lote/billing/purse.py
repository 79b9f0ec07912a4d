"""A tenant's balance and in-flight slots, split so that admissions never serialize on one document.

    tenants/{t}                credits (the unreserved part of the balance), slots_lent, spend
    tenants/{t}/slices/{k}     credits, slots (in-flight slots it holds), in_use, frozen, capped,
                               room + room_day (spend-cap room lent to it: billing/spend.py)

The balance is `tenants/{t}.credits` plus every slice's `credits` (the audit checks it equals the
ledger's sum). A single generation is admitted against one slice chosen at random: one read and one
commit preconditioned on that slice alone, so a tenant's thousands of end users spread over
LOTE_PURSE_SLICES documents instead of racing for one. A slice that cannot cover an admission is
refilled from the tenant document (a share of what is there, so refills are rare), else from the
other slices; only when the whole purse cannot cover it is the answer 402 or 429. Under a tenant's
spend cap the same holds for cap room: a slice spends the room lent to it for today with its
credits, and lacking it takes the slow path, which lends it room or answers 403.

Exact, not approximate: a slice's credits never go below zero (every debit is preconditioned on the
slice it reads), and a slice's free slots are lent out of `max_in_flight` by the tenant document, so
the admitted singles never exceed the balance nor the limit. A single's refund and its slot go back
to the slice it was admitted from as blind increments in the commit that ends it (no read, no
precondition: an increment commutes with every other write of that slice).

A debt (a clawback or negative grant larger than the tenant document holds) first gathers every
slice into the tenant document; slices left empty then are `frozen`, so a refund that later lands on
one of them cannot be spent while the tenant is in debt: a frozen slice admits only through the slow
path, which reads the tenant document and pays the debt first.

The arithmetic is pure (plan_take, gather_plan); the functions below it read and stage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from lote import timeutil
from lote.billing.spend import Spend, day_key, low_balance_fields, spend_of
from lote.errors import TooManyRequests

if TYPE_CHECKING:
    from google.cloud import firestore

SLICES = "slices"


# --- The arithmetic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """One slice of a purse as read (or as it will be written)."""

    credits: int = 0
    slots: int = 0
    in_use: int = 0
    frozen: bool = False
    capped: bool = False  # its tenant's limit was lowered below what is lent: admit only via the slow path
    room: int | None = None  # spend-cap room lent for `room_day` (billing/spend.py); None: no cap
    room_day: str = ""

    @property
    def free(self) -> int:
        """Slots it can still admit with."""
        return self.slots - self.in_use

    def room_on(self, today: str) -> int:
        """Cap room it holds for `today` (room lent on an earlier day is spent on nothing)."""
        return self.room if self.room is not None and self.room_day == today else 0

    def covers(self, price: int, today: str = "") -> bool:
        """Whether it alone admits one single of `price` on `today` (the fast path)."""
        room_ok = self.room is None or self.room_on(today) >= price
        return not self.frozen and not self.capped and self.credits >= price and self.free >= 1 and room_ok

    def fields(self) -> dict[str, Any]:
        """Its stored fields."""
        return {"credits": self.credits, "slots": self.slots, "in_use": self.in_use, "frozen": self.frozen,
                "capped": self.capped, "room": self.room, "room_day": self.room_day}  # fmt: skip


@dataclass(frozen=True)
class Purse:
    """The tenant document's part and every slice: the whole balance and every slot."""

    credits: int
    slots_lent: int
    slices: dict[int, Slice] = field(default_factory=dict)
    spend: Spend | None = None  # the tenant's spend caps as of today; None without a cap

    @property
    def balance(self) -> int:
        """The tenant's balance: what the ledger sums to."""
        return self.credits + sum(s.credits for s in self.slices.values())

    def free_slots(self, limit: int) -> int:
        """Singles it may still admit under `limit`."""
        return (limit - self.slots_lent) + sum(max(0, s.free) for s in self.slices.values())

    @property
    def room_held(self) -> int:
        """Cap room its slices hold for today."""
        return 0 if self.spend is None else sum(s.room_on(self.spend.day) for s in self.slices.values())


@dataclass(frozen=True)
class Take:
    """What an admission writes: the slice it debits (`index`), the slices it changed (including
    that one), and the tenant document's new fields if it changed (a refill or a debt paid)."""

    index: int
    slices: dict[int, Slice]
    main: tuple[int, int] | None = None  # (credits, slots_lent)
    spend: Spend | None = None  # the tenant document's new spend counts, when they changed
    balance: int = 0  # the whole balance after this admission


def refuse(purse: Purse, price: int, limit: int) -> None:
    """Raise what an admission of `price` gets against the whole purse when it does not fit: 402
    when the balance does not cover it (a negative balance covers nothing), 429 at the limit."""
    from lote.billing.credits import require_funds  # credits builds on this module

    require_funds(purse.balance, price)
    require_room(limit - purse.free_slots(limit), limit)
    if purse.spend is not None:
        purse.spend.refuse(price, purse.room_held)


def gather_plan(purse: Purse, delta: int = 0) -> Purse:
    """Every slice's credits moved into the tenant document (slots stay where they are), before an
    entry of `delta` is made there; slices are left frozen when that entry leaves a debt, so no
    refund landing on one of them is spent before the debt is paid."""
    debt = purse.balance + delta < 0
    slices = {k: replace(s, credits=0, frozen=debt) for k, s in purse.slices.items()}
    return Purse(purse.balance, purse.slots_lent, slices, purse.spend)


def refillable(purse: Purse, index: int, price: int, limit: int) -> bool:
    """Whether the tenant document alone can refill slice `index` for an admission of `price` (so
    every slice gets its share, instead of the existing ones taking every admission)."""
    target = purse.slices.get(index, Slice())
    credits_ok = purse.credits >= max(0, price - target.credits)
    slots_ok = target.free >= 1 or limit - purse.slots_lent >= 1
    return not target.frozen and credits_ok and slots_ok


def plan_take(purse: Purse, index: int, price: int, limit: int, count: int) -> Take:
    """Admit one single of `price` through slice `index` of a purse split in `count` slices,
    moving credits, a slot and (under a spend cap) cap room into it when it lacks them; raises 402,
    429 or 403 `spend_cap_reached` (refuse()).

    Refills take a 1/`count` share of what the tenant document holds (at least what is missing),
    so a busy tenant writes its tenant document about `count` times per drain, not per admission.
    """
    before = purse
    if purse.credits < 0:  # a debt is paid from the slices before anything is admitted
        purse = gather_plan(purse)
    purse = stale_room_back(purse)
    refuse(purse, price, limit)
    main_credits, lent = purse.credits, purse.slots_lent
    changed: dict[int, Slice] = {}
    target = purse.slices.get(index, Slice())
    short = price - target.credits
    if short > 0:
        moved = min(main_credits, max(short, main_credits // count))
        main_credits -= moved
        target = replace(target, credits=target.credits + moved)
        short -= moved
    for k, other in sorted(purse.slices.items(), key=lambda kv: -kv[1].credits):
        if short <= 0:
            break
        if k != index and other.credits > 0:
            moved = min(other.credits, short)
            changed[k] = replace(other, credits=other.credits - moved)
            target = replace(target, credits=target.credits + moved)
            short -= moved
    if target.free < 1:
        spare = limit - lent
        if spare >= 1:
            lent_now = min(spare, max(1, spare // count))
            lent += lent_now
            target = replace(target, slots=target.slots + lent_now)
        else:
            k, other = next((k, s) for k, s in purse.slices.items() if k != index and s.free >= 1)
            changed[k] = replace(changed.get(k, other), slots=other.slots - 1)
            target = replace(target, slots=target.slots + 1)
    spend = purse.spend
    room: int | None = None
    if spend is not None:
        target, spend = _lend_room(target, spend, price, count, index, purse.slices, changed)
        room = target.room_on(spend.day) - price
    changed[index] = replace(target, credits=target.credits - price, in_use=target.in_use + 1, frozen=False,
                             capped=lent > limit, room=room, room_day=spend.day if spend else "")  # fmt: skip
    for k, now in purse.slices.items():  # slices a paid debt emptied (gather_plan) are written too
        if k not in changed and now != before.slices[k]:
            changed[k] = now
    main = (main_credits, lent) if (main_credits, lent) != (before.credits, before.slots_lent) else None
    new_spend = spend if spend != before.spend else None
    return Take(index, changed, main, new_spend, purse.balance - price)


def stale_room_back(purse: Purse) -> Purse:
    """Under a spend cap: room slices hold for an earlier day, given back (the month's count
    drops by what this month lent and nobody spent), so the slow path judges with it."""
    spend = purse.spend
    if spend is None:
        return purse
    slices = dict(purse.slices)
    for k, held in purse.slices.items():
        if held.room and held.room_day != spend.day:
            spend = spend.back(held.room, held.room_day)
            slices[k] = replace(held, room=0, room_day=spend.day)
    return replace(purse, slices=slices, spend=spend)


def _lend_room(
    target: Slice, spend: Spend, price: int, count: int, index: int, slices: dict[int, Slice],
    changed: dict[int, Slice],
) -> tuple[Slice, Spend]:  # fmt: skip
    """Under a spend cap: the target slice with room for `price` today (a stale day's room given
    back first, then a 1/`count` share of what the caps leave, then other slices' room of today),
    and the spend after it. Other slices it takes room from are put in `changed`."""
    today = spend.day
    target = replace(target, room=target.room_on(today), room_day=today)
    short = price - target.room_on(today)
    if short > 0 and spend.left > 0:
        moved = min(spend.left, max(short, spend.left // count))
        spend = spend.lend(moved)
        target = replace(target, room=target.room_on(today) + moved)
        short -= moved
    for k, other in sorted(slices.items(), key=lambda kv: -kv[1].room_on(today)):
        current = changed.get(k, other)
        if short <= 0:
            break
        if k != index and current.room_on(today) > 0:
            moved = min(current.room_on(today), short)
            changed[k] = replace(current, room=current.room_on(today) - moved)
            target = replace(target, room=target.room_on(today) + moved)
            short -= moved
    return target, spend


# --- Reading and staging ----------------------------------------------------------------------


def slice_ref(db: firestore.Client, tenant_id: str, index: int) -> firestore.DocumentReference:
    """Where slice `index` of a tenant's purse lives."""
    from lote.billing.ledger import tenant_ref

    return tenant_ref(db, tenant_id).collection(SLICES).document(str(index))


def _slice(snapshot: firestore.DocumentSnapshot) -> Slice:
    doc = snapshot.to_dict() or {}
    room = doc.get("room")
    return Slice(int(doc.get("credits", 0)), int(doc.get("slots", 0)), int(doc.get("in_use", 0)),
                 bool(doc.get("frozen", False)), bool(doc.get("capped", False)),
                 None if room is None else int(room), str(doc.get("room_day") or ""))  # fmt: skip


def read_slices(
    db: firestore.Client, tenant_id: str, transaction: Any = None
) -> dict[int, tuple[Slice, firestore.DocumentSnapshot]]:
    """Every slice of a tenant that exists (one query), with the snapshot it was read from."""
    from lote.billing.ledger import tenant_ref

    found = tenant_ref(db, tenant_id).collection(SLICES).stream(transaction=transaction)
    return {int(s.id): (_slice(s), s) for s in found}


def read(db: firestore.Client, tenant_id: str) -> Purse | None:
    """The whole purse as read now (not at one instant: for answers, never for writes); None
    without the tenant."""
    from lote.billing.ledger import tenant_ref

    tenant = tenant_ref(db, tenant_id).get()
    if not tenant.exists:
        return None
    return of(tenant, {k: s for k, (s, _) in read_slices(db, tenant_id).items()})


def of(tenant: firestore.DocumentSnapshot, slices: dict[int, Slice], today: str | None = None) -> Purse:
    """The purse of a tenant snapshot and its slices, its spend caps as of `today` (default: now)."""
    doc = tenant.to_dict() or {}
    spend = spend_of(doc, today or day_key(timeutil.now()))
    return Purse(int(doc.get("credits", 0)), int(doc.get("slots_lent", 0)), slices, spend)


def take(
    batch: firestore.WriteBatch,
    db: firestore.Client,
    tenant_id: str,
    price: int,
    limit: int,
    count: int,
    events: list[str] | None = None,
) -> int:
    """Into an optimistic batch: admit one single of `price` under `limit` in flight, raising 402,
    429 or 403 (a spend cap) with nothing staged. Returns the slice it was admitted through
    (recorded on the job, so its end gives back to the same slice). The slow path, which reads the
    whole balance, also warns of a low balance (billing/spend.py; the event's id goes to `events`).

    Reads one slice when it covers the admission (the common case); otherwise the tenant document
    and every slice, and stages a refill. Every document written is preconditioned on the update time
    read (or created if absent), so a lost race reads again."""
    from lote.billing.ledger import tenant_ref

    index = random.randrange(count)  # noqa: S311 - spreading load, not security
    ref = slice_ref(db, tenant_id, index)
    snapshot = ref.get()
    current = _slice(snapshot)
    today = day_key(timeutil.now())
    if snapshot.exists and current.covers(price, today):
        fields: dict[str, Any] = {"credits": current.credits - price, "in_use": current.in_use + 1}
        if current.room is not None:  # under a spend cap: the room is spent with the credits
            fields["room"] = current.room - price
        batch.update(ref, fields, option=db.write_option(last_update_time=snapshot.update_time))
        return index
    tenant = tenant_ref(db, tenant_id).get()
    read_now = read_slices(db, tenant_id)
    purse = of(tenant, {k: s for k, (s, _) in read_now.items()}, today)
    ready = [k for k, s in purse.slices.items() if s.covers(price, today)]
    if ready and not refillable(purse, index, price, limit):
        index = random.choice(ready)  # noqa: S311 - another slice covers it: no consolidation needed
    plan = plan_take(purse, index, price, limit, count)
    for k, new in plan.slices.items():
        target = slice_ref(db, tenant_id, k)
        if k in read_now:
            option = db.write_option(last_update_time=read_now[k][1].update_time)
            batch.update(target, new.fields(), option=option)
        else:
            batch.create(target, new.fields())
    main: dict[str, Any] = {}
    if plan.main is not None:
        main["credits"], main["slots_lent"] = plan.main
    if plan.spend is not None:
        main["spend"] = plan.spend.fields()
    main.update(low_balance_fields(batch, db, tenant, plan.balance, events))
    if main:
        batch.update(tenant.reference, main, option=db.write_option(last_update_time=tenant.update_time))
    return plan.index


def give_back(commit: Any, db: firestore.Client, tenant_id: str, index: int, credits: int) -> None:
    """Into the commit that ends a single admitted through slice `index`: its slot, and `credits`
    (its refund, or 0), as increments: no read, nothing to lose a race on."""
    from google.cloud.firestore import Increment

    fields: dict[str, Any] = {"in_use": Increment(-1)}
    if credits:
        fields["credits"] = Increment(credits)
    commit.update(slice_ref(db, tenant_id, index), fields)


def gather(
    commit: Any,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    delta: int,
    locked: bool,
    read: dict[int, tuple[Slice, firestore.DocumentSnapshot]] | None = None,
) -> int:
    """Into a commit that makes an entry of `delta` on the tenant document (before its writes): move
    every slice's credits into it (preconditioned on each slice in a batch; a transaction's reads
    guard them when `locked`), freezing them if the entry leaves a debt. Returns the credits moved,
    which the caller adds to the balance it writes. `read`: the slices as the caller read them
    (outside a transaction only: the preconditions are their snapshots' update times)."""
    slices = read if read is not None else read_slices(db, tenant.id, transaction=commit if locked else None)
    purse = of(tenant, {k: s for k, (s, _) in slices.items()})
    gathered = gather_plan(purse, delta)
    for k, (old, snapshot) in slices.items():
        if gathered.slices[k] != old:
            option = None if locked else db.write_option(last_update_time=snapshot.update_time)
            commit.update(snapshot.reference, gathered.slices[k].fields(), option=option)
    return gathered.credits - purse.credits


def reclaim_slots(db: firestore.Client, tenant_id: str) -> None:
    """After a plan change: every slice keeps only the slots its singles use and the rest return to
    the tenant document, so a lowered `max_in_flight` binds at once (in a transaction: rare)."""
    from lote import transactions
    from lote.billing.ledger import tenant_ref

    def body(tx: firestore.Transaction) -> None:
        tenant = tenant_ref(db, tenant_id).get(transaction=tx)
        slices = read_slices(db, tenant_id, transaction=tx)
        if not tenant.exists:
            return
        lent = 0
        for old, snapshot in slices.values():
            kept = max(0, old.in_use)
            lent += kept
            # Capped: its slots freed later must not be spent on the fast path while more is lent
            # than the new limit; the slow path reads the tenant document and judges.
            tx.update(snapshot.reference, {"slots": kept, "capped": True})
        tx.update(tenant.reference, {"slots_lent": lent})

    transactions.run(db, body)


# A single refused for its in-flight slots may try again this soon (its slots free as jobs end).
IN_FLIGHT_RETRY_AFTER_S = 5


class TooManyInFlight(TooManyRequests):
    """The tenant has as many single generations queued or running as its plan allows."""

    code = "too_many_in_flight"


def require_room(in_flight: int, limit: int) -> None:
    """429 `too_many_in_flight` when `in_flight` already reaches `limit`."""
    if in_flight >= limit:
        raise TooManyInFlight(
            f"{in_flight} generations are queued or running; the plan allows {limit} at once",
            {"in_flight": in_flight, "limit": limit},
            headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_S)},
        )
