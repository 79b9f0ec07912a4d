"""Spend controls: a tenant's daily and monthly credit caps, and its low-balance threshold.

A cap limits the credits lote may *charge* a tenant in a UTC day or month (every debit counts;
a refund gives the credits back but not the cap's room, so a cap bounds what is at stake, as a
card's spending limit does). It must hold exactly while a tenant's singles are admitted through
16 purse slices that never read the tenant document on the common path (billing/purse.py), so the
cap is enforced the way the balance is: as room handed out.

    tenants/{t}.spend          {day, day_out, month, month_out}: room handed out this day/month
    tenants/{t}/slices/{k}     room, room_day: room lent to the slice for that day (None: no cap)

`day_out` counts every credit of cap room that left the tenant document today: charged to a batch
on it directly, or lent to a slice. A single admitted through a slice spends the slice's room of
today as it spends the slice's credits (in the same preconditioned commit); a slice without room
takes the slow path, which lends it a share of what is left (at most what the caps allow). Room a
slice did not spend stays counted until the slow path returns it (a stale day's room goes back to
the month's count); a batch that needs room the slices hold gathers it back first. So, always:

    debits of the day + room held by slices for the day   == day_out   <= daily cap
    debits of the month + room held by slices this month  == month_out <= monthly cap

(audit rule `spend_counted`). Days and months are UTC.

The low-balance threshold is checked wherever the whole balance is read anyway (the purse's slow
path, every entry on the tenant document): crossing below it sends `account.low_balance` once,
and the balance rising to it again re-arms the warning.

The arithmetic is pure (Caps, Spend, low_balance_change); store functions follow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from lote import timeutil
from lote.errors import Forbidden

if TYPE_CHECKING:
    from google.cloud import firestore


def day_key(now: dt.datetime) -> str:
    """The UTC day `now` is in, as stored ("2026-12-05")."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%d")


def next_day(day: str) -> dt.datetime:
    """When the day after `day` starts (UTC)."""
    return dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC) + dt.timedelta(days=1)


def next_month(month: str) -> dt.datetime:
    """When the month after `month` ("2026-12") starts (UTC)."""
    year, number = (int(part) for part in month.split("-"))
    return dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)


def day_start(day: str) -> dt.datetime:
    """When `day` started (UTC)."""
    return next_day(day) - dt.timedelta(days=1)


def month_start(month: str) -> dt.datetime:
    """When `month` started (UTC)."""
    year, number = (int(part) for part in month.split("-"))
    return dt.datetime(year, number, 1, tzinfo=dt.UTC)


class SpendCapReached(Forbidden):
    """A daily or monthly credit cap the tenant set does not allow this charge; nothing was written."""

    code = "spend_cap_reached"


@dataclass(frozen=True)
class Caps:
    """What a tenant set: credits a day and a month (None: no cap), the low-balance threshold."""

    daily: int | None = None
    monthly: int | None = None
    low_balance: int | None = None

    @property
    def capped(self) -> bool:
        """Whether a cap binds charges (the threshold alone does not)."""
        return self.daily is not None or self.monthly is not None


@dataclass(frozen=True)
class Spend:
    """The room the caps handed out in the current day and month (charged, or lent to slices)."""

    caps: Caps
    day: str
    day_out: int = 0
    month_out: int = 0

    @property
    def month(self) -> str:
        """The month of `day` ("2026-12")."""
        return self.day[:7]

    def on(self, today: str) -> Spend:
        """The counts as of `today`: a new day (and a new month) starts from zero."""
        if today == self.day:
            return self
        return replace(self, day=today, day_out=0, month_out=self.month_out if today[:7] == self.month else 0)

    @property
    def left(self) -> int:
        """Room the caps still allow this day and month (never negative)."""
        counted = ((self.caps.daily, self.day_out), (self.caps.monthly, self.month_out))
        room = [cap - out for cap, out in counted if cap is not None]
        return max(0, min(room)) if room else 0

    def lend(self, amount: int) -> Spend:
        """`amount` of room handed out now (lent to a slice or charged)."""
        return replace(self, day_out=self.day_out + amount, month_out=self.month_out + amount)

    def back(self, amount: int, lent_on: str) -> Spend:
        """`amount` of room lent on `lent_on` that was not spent, given back."""
        day_out = self.day_out - amount if lent_on == self.day else self.day_out
        month_out = self.month_out - amount if lent_on[:7] == self.month else self.month_out
        return replace(self, day_out=day_out, month_out=month_out)

    def fields(self) -> dict[str, Any]:
        """Its stored fields (tenants/{t}.spend)."""
        return {"day": self.day, "day_out": self.day_out, "month_out": self.month_out}

    def refuse(self, price: int, held: int) -> None:
        """403 `spend_cap_reached` unless what is left, with the `held` room slices hold for today,
        covers `price`."""
        if self.left + held >= price:
            return
        spent_day, spent_month = self.day_out - held, self.month_out - held
        bound: list[tuple[Literal["day", "month"], int, int, dt.datetime]] = []
        if self.caps.daily is not None:
            bound.append(("day", self.caps.daily, spent_day, next_day(self.day)))
        if self.caps.monthly is not None:
            bound.append(("month", self.caps.monthly, spent_month, next_month(self.month)))
        period, cap, charged, resets = min(bound, key=lambda b: b[1] - b[2])
        raise SpendCapReached(
            f"this needs {price} credits; the {'daily' if period == 'day' else 'monthly'} cap of {cap} "
            f"credits has {max(0, cap - charged)} left",
            {"period": period, "cap": cap, "charged": charged, "required": price,
             "resets_at": timeutil.iso(resets)},
        )  # fmt: skip


def spend_of(tenant: Mapping[str, Any], today: str) -> Spend | None:
    """A tenant document's spend as of `today`, None when it sets no cap."""
    caps = caps_of(tenant)
    if not caps.capped:
        return None
    stored = tenant.get("spend") or {}
    day = str(stored.get("day") or today)
    found = Spend(caps, day, int(stored.get("day_out") or 0), int(stored.get("month_out") or 0))
    return found.on(today)


def caps_of(tenant: Mapping[str, Any]) -> Caps:
    """The caps a tenant document sets."""
    stored = tenant.get("caps") or {}
    return Caps(stored.get("daily"), stored.get("monthly"), stored.get("low_balance"))


LowBalance = Literal["warn", "rearm"]


def low_balance_change(threshold: int | None, warned: bool, balance: int) -> LowBalance | None:
    """What a balance read whole means for the warning: `warn` when it is below the threshold and
    was not yet warned of, `rearm` when it is back at or above it after a warning."""
    if threshold is None:
        return "rearm" if warned else None
    if balance < threshold and not warned:
        return "warn"
    if balance >= threshold and warned:
        return "rearm"
    return None


# --- Reading and staging ----------------------------------------------------------------------

WARNED = "low_balance_warned"  # tenant document: the balance is below the threshold and was warned of
WARNINGS = "low_balance_warnings"  # tenant document: how many warnings were sent (each event's occurrence)
LOW_BALANCE, CAP_REACHED = "account.low_balance", "account.cap_reached"


def charged(db: firestore.Client, tenant_id: str, since: dt.datetime) -> int:
    """Credits debited to a tenant since `since` (every debit entry; refunds do not reduce it)."""
    from lote.billing import ledger

    return -ledger.summed(db, tenant_id, "debit", since)


def low_balance_fields(
    writer: Any,
    db: firestore.Client,
    tenant: firestore.DocumentSnapshot,
    balance: int,
    events: list[str] | None,
) -> dict[str, Any]:
    """Into a commit that writes the tenant document having read the whole `balance` it leaves: the
    warning's fields to write with it (nothing when the warning's state does not change), and the
    `account.low_balance` event once per crossing (its id derives from the count of warnings) when
    the tenant named a webhook URL; its id is added to `events` for the caller to enqueue (a commit
    without a caller that does is delivered by the repair sweep's pass over unenqueued events)."""
    doc = tenant.to_dict() or {}
    caps = caps_of(doc)
    change = low_balance_change(caps.low_balance, bool(doc.get(WARNED)), balance)
    if change is None:
        return {}
    if change == "rearm":
        return {WARNED: False}
    count = int(doc.get(WARNINGS) or 0) + 1
    url = (doc.get("caps") or {}).get("webhook_url")
    if url:
        from lote.webhooks import events as webhook_events
        from lote.webhooks import store as webhook_store

        data = {"tenant_id": tenant.id, "balance": balance, "threshold": caps.low_balance}
        msg_id, delivery = webhook_events.prepared(
            tenant_id=tenant.id, url=url, kind=LOW_BALANCE, subject=tenant.id, data=data, occurrence=count
        )
        writer.create(webhook_store.ref(db, msg_id), dict(delivery))
        if events is not None:
            events.append(msg_id)
    return {WARNED: True, WARNINGS: count}


def cap_reached(db: firestore.Client, tenant_id: str, refused: SpendCapReached) -> str | None:
    """After a charge the caps refused: `account.cap_reached` once per tenant and period (its id
    derives from the period), when the tenant named a webhook URL. Returns the event's id when this
    call created it (the caller enqueues it), None when it exists or is not wanted."""
    from google.api_core.exceptions import AlreadyExists

    from lote.billing import ledger
    from lote.webhooks import events as webhook_events
    from lote.webhooks import store as webhook_store

    period, resets = str(refused.details["period"]), str(refused.details["resets_at"])
    key = (tenant_id, period, resets)
    if key in _notified:  # a crowd refused at the cap costs one create, not one per request
        return None
    doc = ledger.tenant_ref(db, tenant_id).get().to_dict() or {}
    url = (doc.get("caps") or {}).get("webhook_url")
    if len(_notified) >= NOTIFIED_KEPT:  # a long-lived instance forgets old periods (the id still dedups)
        _notified.clear()
    _notified.add(key)
    if not url:
        return None
    data = {"tenant_id": tenant_id, **refused.details}
    data.pop("required", None)
    subject = f"{tenant_id}:{period}:{resets}"
    msg_id, delivery = webhook_events.prepared(
        tenant_id=tenant_id, url=url, kind=CAP_REACHED, subject=subject, data=data
    )
    try:
        webhook_store.ref(db, msg_id).create(dict(delivery))
    except AlreadyExists:
        return None
    return msg_id


_notified: set[tuple[str, str, str]] = set()
NOTIFIED_KEPT = 10_000


def set_caps(db: firestore.Client, tenant_id: str, caps: Caps, webhook_url: str | None, count: int) -> bool:
    """Set a tenant's caps and threshold (False without the tenant). Starting to cap counts what was
    already charged this day and month (the ledger's debits), and gives every purse slice zero room,
    so the next single takes the slow path and is lent room; dropping every cap takes the room away."""
    from lote import transactions
    from lote.billing import ledger, purse

    def body(tx: firestore.Transaction) -> bool:
        tenant = ledger.tenant_ref(db, tenant_id).get(transaction=tx)
        slices = purse.read_slices(db, tenant_id, transaction=tx)
        if not tenant.exists:
            return False
        doc, now = tenant.to_dict() or {}, timeutil.now()
        today = day_key(now)
        was = spend_of(doc, today)
        stored = {"daily": caps.daily, "monthly": caps.monthly, "low_balance": caps.low_balance,
                  "webhook_url": webhook_url}  # fmt: skip
        fields: dict[str, Any] = {"caps": stored}
        if caps.capped:
            if was is None:
                # Read after the slices and the tenant: a charge committed before these reads is in
                # the ledger the sums read; one committed after them conflicts with this transaction.
                spend = Spend(caps, today, charged(db, tenant_id, day_start(today)),
                              charged(db, tenant_id, month_start(today[:7])))  # fmt: skip
            else:
                spend = replace(was, caps=caps)
            # Room lent under the old caps comes back, so new ones bind at once.
            for index in range(count):
                found = slices.get(index)
                ref = purse.slice_ref(db, tenant_id, index)
                if found is None:
                    tx.create(ref, purse.Slice(room=0, room_day=today).fields())
                    continue
                if found[0].room:
                    spend = spend.back(found[0].room, found[0].room_day)
                tx.update(ref, {"room": 0, "room_day": today})
            fields["spend"] = spend.fields()
        elif not caps.capped and was is not None:
            fields["spend"] = None
            for _, snapshot in slices.values():
                tx.update(snapshot.reference, {"room": None, "room_day": ""})
        tx.update(tenant.reference, fields)
        return True

    return bool(transactions.run(db, body))


def make_room(db: firestore.Client, tenant_id: str, price: int) -> None:
    """Before a batch charge of `price` that the tenant document's room does not cover: the room
    the purse slices hold back into it (in a transaction: rare, at the cap's edge)."""
    from lote import transactions
    from lote.billing import ledger, purse

    def body(tx: firestore.Transaction) -> None:
        tenant = ledger.tenant_ref(db, tenant_id).get(transaction=tx)
        slices = purse.read_slices(db, tenant_id, transaction=tx)
        spend = spend_of(tenant.to_dict() or {}, day_key(timeutil.now()))
        if spend is None or spend.left >= price:
            return
        for held, snapshot in slices.values():
            if held.room:
                spend = spend.back(held.room, held.room_day)
                tx.update(snapshot.reference, {"room": 0, "room_day": spend.day})
        tx.update(tenant.reference, {"spend": spend.fields()})

    transactions.run(db, body)
