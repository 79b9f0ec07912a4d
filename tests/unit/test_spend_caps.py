"""Spend caps (billing/spend.py) through the purse (billing/purse.py): singles admitted over many
slices and batches charged on the tenant document never charge past a daily or monthly cap, every
credit of room is accounted for, and a low balance is warned of once per crossing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lote.billing import purse, spend
from lote.billing.credits import InsufficientCredits
from lote.billing.purse import Purse, Slice, TooManyInFlight
from lote.billing.spend import Caps, Spend, SpendCapReached

TODAY = "2026-12-05"


def _apply(before: Purse, take: purse.Take) -> Purse:
    credits, lent = take.main if take.main is not None else (before.credits, before.slots_lent)
    return Purse(credits, lent, {**before.slices, **take.slices}, take.spend or before.spend)


def test_a_new_day_starts_from_zero_and_a_new_month_too():
    spent = Spend(Caps(daily=100, monthly=1000), "2026-12-05", 90, 900)
    assert spent.on("2026-12-05") is spent and spent.left == 10
    assert spent.on("2026-12-06") == Spend(spent.caps, "2026-12-06", 0, 900)
    assert spent.on("2027-01-01") == Spend(spent.caps, "2027-01-01", 0, 0)
    # Room lent yesterday and given back today leaves today's count alone, but not the month's.
    assert spent.on("2026-12-06").back(5, "2026-12-05") == Spend(spent.caps, "2026-12-06", 0, 895)


def test_the_tighter_cap_is_the_one_named():
    with pytest.raises(SpendCapReached) as refused:
        Spend(Caps(daily=100, monthly=150), TODAY, 40, 140).refuse(20, held=0)
    assert refused.value.status == 403 and refused.value.code == "spend_cap_reached"
    assert refused.value.details == {"period": "month", "cap": 150, "charged": 140, "required": 20,
                                     "resets_at": "2027-01-01T00:00:00.000Z"}  # fmt: skip
    Spend(Caps(daily=100), TODAY, 90, 90).refuse(20, held=15)  # room a slice holds counts


def test_a_slice_without_room_takes_the_slow_path_and_is_lent_a_share():
    capped = Purse(1000, 0, {}, Spend(Caps(daily=160), TODAY))
    take = purse.plan_take(capped, 2, price=4, limit=100, count=16)
    assert take.spend == Spend(Caps(daily=160), TODAY, 10, 10)  # 1/16 of the day's 160
    assert take.slices[2].room == 6 and take.slices[2].room_day == TODAY
    after = _apply(capped, take)
    assert after.slices[2].covers(4, TODAY) and not after.slices[2].covers(4, "2026-12-06")
    assert not after.slices[2].covers(7, TODAY)


def test_stale_room_goes_back_to_the_month_and_the_cap_refuses_with_nothing_written():
    stale = Slice(credits=50, slots=4, room=7, room_day="2026-12-04")
    capped = Purse(1000, 4, {0: stale}, Spend(Caps(daily=10, monthly=30), "2026-12-05", 0, 30))
    take = purse.plan_take(capped, 0, price=4, limit=10, count=1)
    # The 7 lent yesterday come back to the month (23 of 30), and the day's 7 left are lent again.
    assert take.spend == Spend(capped.spend.caps, "2026-12-05", 7, 30)  # type: ignore[union-attr]
    assert take.slices[0].room == 3
    full = Purse(1000, 0, {}, Spend(Caps(daily=10), TODAY, 8, 8))
    with pytest.raises(SpendCapReached):
        purse.plan_take(full, 0, price=4, limit=10, count=16)


def test_a_low_balance_is_warned_of_once_and_rearmed_by_a_top_up():
    assert spend.low_balance_change(100, warned=False, balance=99) == "warn"
    assert spend.low_balance_change(100, warned=True, balance=50) is None
    assert spend.low_balance_change(100, warned=True, balance=100) == "rearm"
    assert spend.low_balance_change(None, warned=True, balance=0) == "rearm"
    assert spend.low_balance_change(None, warned=False, balance=0) is None


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 7), st.integers(1, 5)),
        st.tuples(st.just("end"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("batch"), st.integers(1, 20), st.just(False)),
        st.tuples(st.just("day"), st.just(0), st.just(False)),
    ),
    max_size=60,
)
DAYS = ["2026-12-30", "2026-12-31", "2027-01-01", "2027-01-02", "2027-01-03"]


@settings(max_examples=300, deadline=None)
@given(daily=st.integers(0, 40), monthly=st.integers(0, 80), count=st.integers(1, 8), ops=OPS)
def test_caps_are_never_exceeded_and_every_credit_of_room_is_counted(
    daily: int, monthly: int, count: int, ops: list[tuple[str, int, object]]
):
    """The invariants the audit checks (`spend_counted`): charged in a day and held for it by slices
    equals what the day handed out, which never passes the cap; the same for the month."""
    caps = Caps(daily=daily, monthly=monthly)
    day = 0
    state = Purse(10_000, 0, {}, Spend(caps, DAYS[day]))
    charged: dict[str, int] = {}  # debits by day
    running: list[tuple[int, int]] = []
    for op, a, b in ops:
        today = DAYS[day]
        state = replace(state, spend=state.spend.on(today) if state.spend else None)
        if op == "take":
            index, price = a % count, int(b)  # type: ignore[call-overload]
            try:
                take = purse.plan_take(state, index, price, 1000, count)
            except SpendCapReached:
                assert state.spend is not None and state.spend.left + state.room_held < price
                continue
            except (InsufficientCredits, TooManyInFlight):  # pragma: no cover - the purse is large
                raise
            state = _apply(state, take)
            charged[today] = charged.get(today, 0) + price
            running.append((take.index, price))
        elif op == "end" and running:  # a refund gives back credits, never room
            index, price = running.pop(a % len(running))
            held = state.slices[index]
            state = replace(state, slices={**state.slices, index: replace(
                held, in_use=held.in_use - 1, credits=held.credits + (price if b else 0))})  # fmt: skip
        elif op == "batch":  # a batch charged on the tenant document, after gathering the slices' room
            assert state.spend is not None
            price = a
            try:
                state.spend.refuse(price, state.room_held)
            except SpendCapReached:
                continue
            spent, slices = state.spend, dict(state.slices)
            if spent.left < price:  # spend.make_room
                for k, s in slices.items():
                    if s.room:
                        spent = spent.back(s.room, s.room_day)
                        slices[k] = replace(s, room=0, room_day=today)
            assert spent.left >= price
            state = replace(state, slices=slices, spend=spent.lend(price), credits=state.credits - price)
            charged[today] = charged.get(today, 0) + price
        elif op == "day" and day + 1 < len(DAYS):
            day += 1
        spent = state.spend
        assert spent is not None
        today = spent.day
        held_today = sum(s.room_on(today) for s in state.slices.values())
        held_month = sum(s.room or 0 for s in state.slices.values() if s.room_day[:7] == today[:7])
        month_charged = sum(v for d, v in charged.items() if d[:7] == today[:7])
        assert charged.get(today, 0) + held_today == spent.day_out <= daily
        assert month_charged + held_month == spent.month_out <= monthly
        assert all((s.room or 0) >= 0 for s in state.slices.values())
