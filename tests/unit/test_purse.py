"""A tenant's purse (billing/purse.py): admissions spread over slices never admit past the balance or
the in-flight limit, conserve every credit and slot, and a debt freezes what could be spent around it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lote.billing import purse
from lote.billing.credits import InsufficientCredits
from lote.billing.purse import Purse, Slice, TooManyInFlight


def _apply(before: Purse, take: purse.Take) -> Purse:
    credits, lent = take.main if take.main is not None else (before.credits, before.slots_lent)
    return Purse(credits, lent, {**before.slices, **take.slices})


def test_a_covering_slice_is_debited_alone():
    before = Purse(100, 8, {3: Slice(credits=10, slots=8, in_use=2)})
    take = purse.plan_take(before, 3, price=4, limit=100, count=16)
    assert take.main is None and take.slices == {3: Slice(credits=6, slots=8, in_use=3)}


def test_an_empty_slice_is_refilled_with_a_share_of_the_tenant_document():
    take = purse.plan_take(Purse(1600, 0), 5, price=4, limit=160, count=16)
    # 1/16 of the credits and of the free slots, less what this admission uses.
    assert take.main == (1500, 10)
    assert take.slices == {5: Slice(credits=96, slots=10, in_use=1)}


def test_when_the_tenant_document_is_empty_the_other_slices_pay():
    before = Purse(0, 2, {0: Slice(credits=3, slots=1, in_use=1), 1: Slice(credits=2, slots=1, in_use=0)})
    take = purse.plan_take(before, 7, price=4, limit=2, count=16)
    after = _apply(before, take)
    assert after.balance == 1 and after.slices[7].in_use == 1 and after.free_slots(2) == 0
    assert all(s.credits >= 0 and 0 <= s.in_use <= s.slots for s in after.slices.values())


def test_the_whole_purse_refuses_with_402_then_429():
    with pytest.raises(InsufficientCredits) as short:
        purse.plan_take(Purse(1, 0, {0: Slice(credits=2)}), 0, price=4, limit=10, count=16)
    assert short.value.details == {"required": 4, "available": 3}
    full = Purse(100, 2, {0: Slice(slots=1, in_use=1), 1: Slice(slots=1, in_use=1)})
    with pytest.raises(TooManyInFlight) as busy:
        purse.plan_take(full, 0, price=1, limit=2, count=16)
    assert busy.value.details == {"in_flight": 2, "limit": 2} and busy.value.headers["Retry-After"]


def test_a_debt_gathers_the_slices_and_freezes_them():
    owing = Purse(-50, 0, {0: Slice(credits=20), 1: Slice(credits=10)})
    gathered = purse.gather_plan(owing, 0)
    assert gathered.credits == -20 and all(s.frozen and s.credits == 0 for s in gathered.slices.values())
    # A refund landing on a frozen slice is not spendable there; the slow path pays the debt first.
    refunded = Purse(-20, 0, {0: replace(gathered.slices[0], credits=4), 1: gathered.slices[1]})
    assert not refunded.slices[0].covers(4)
    with pytest.raises(InsufficientCredits):
        purse.plan_take(refunded, 0, price=4, limit=10, count=16)
    paid = Purse(-20, 0, {0: replace(gathered.slices[0], credits=30), 1: gathered.slices[1]})
    after = _apply(paid, purse.plan_take(paid, 1, price=4, limit=10, count=16))
    assert after.balance == 6 and after.credits >= 0 and not any(s.frozen for s in after.slices.values())


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("take"), st.integers(0, 7), st.integers(0, 5)),
        st.tuples(st.just("end"), st.integers(0, 40), st.booleans()),
        st.tuples(st.just("grant"), st.integers(-30, 30), st.just(False)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 40), limit=st.integers(1, 6), count=st.integers(1, 8), ops=OPS)
def test_a_purse_never_admits_past_its_balance_or_limit_and_conserves_credits(
    start: int, limit: int, count: int, ops: list[tuple[str, int, object]]
):
    state, ledger = Purse(start, 0), start
    running: list[tuple[int, int]] = []  # (slice, price) of admitted singles still in flight
    for op, a, b in ops:
        if op == "take":
            index, price = a % count, int(b)  # type: ignore[call-overload]
            whole = purse.gather_plan(state) if state.credits < 0 else state
            fits = whole.balance >= price and whole.balance >= 0 and len(running) < limit
            try:
                take = purse.plan_take(state, index, price, limit, count)
            except (InsufficientCredits, TooManyInFlight):
                assert not fits
                continue
            assert fits
            state, ledger = _apply(state, take), ledger - price
            running.append((take.index, price))
        elif op == "end" and running:
            index, price = running.pop(a % len(running))
            held = state.slices[index]
            refund = price if b else 0
            state = replace(state, slices={**state.slices, index: replace(
                held, in_use=held.in_use - 1, credits=held.credits + refund)})  # fmt: skip
            ledger += refund
        elif op == "grant":
            delta = a
            if delta < 0 and state.credits + delta < 0:  # ledger._write gathers first
                state = purse.gather_plan(state, delta)
            state, ledger = replace(state, credits=state.credits + delta), ledger + delta
        assert state.balance == ledger
        assert all(s.credits >= 0 and 0 <= s.in_use <= s.slots for s in state.slices.values())
        assert sum(s.slots for s in state.slices.values()) == state.slots_lent
        assert sum(s.in_use for s in state.slices.values()) == len(running) <= max(limit, len(running))
        if state.balance < 0:  # in debt: no slice admits anything on the fast path
            assert not any(s.covers(0) for s in state.slices.values())


def test_a_missing_slice_is_refillable_while_the_tenant_document_holds_enough():
    before = Purse(1000, 10, {0: Slice(credits=50, slots=10)})
    assert purse.refillable(before, 5, price=4, limit=100)  # so slice 5 gets made, not 0 reused
    assert not purse.refillable(Purse(2, 10, before.slices), 5, price=4, limit=100)
    assert not purse.refillable(Purse(1000, 100, before.slices), 5, price=4, limit=100)
