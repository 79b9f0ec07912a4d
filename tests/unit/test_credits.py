"""The credit rules of billing/credits.py: examples, and properties that credits are conserved."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lote.billing import credits
from lote.billing.ledger import Entry

OUTCOMES = ("succeeded", "failed", "canceled")


def test_a_single_generation_is_refunded_its_price_and_a_batch_item_nothing():
    assert credits.single_refund({"price": 3}) == 3
    assert credits.single_refund({"price": 3, "batch_id": "bat_1"}) == 0
    assert credits.single_refund({"price": 0}) == 0
    assert credits.single_refund({}) == 0


def test_a_batch_refunds_what_did_not_succeed_net_of_earlier_refunds():
    assert credits.batch_refund(charged=10, refunded=0, succeeded_price=7) == 3
    assert credits.batch_refund(charged=12, refunded=3, succeeded_price=9) == 0
    assert credits.batch_refund(charged=12, refunded=3, succeeded_price=10) == 0  # never negative


@pytest.mark.parametrize(
    ("balance", "price", "refused"),
    [(5, 5, False), (4, 5, True), (0, 0, False), (-1, 0, True), (-1, -1, True)],
)
def test_funds_cover_a_price_only_from_a_balance_that_is_not_negative(balance, price, refused):
    if refused:
        with pytest.raises(credits.InsufficientCredits) as caught:
            credits.require_funds(balance, price)
        assert caught.value.status == 402
        assert caught.value.details == {"required": price, "available": balance}
    else:
        credits.require_funds(balance, price)


def test_clawback_is_proportional_and_rounded_against_the_buyer():
    assert credits.clawback_target(credits=100, amount=1000, amount_refunded=1) == 1
    assert credits.clawback_target(credits=100, amount=1000, amount_refunded=500) == 50
    assert credits.clawback_target(credits=100, amount=1000, amount_refunded=1000) == 100
    assert credits.clawback_target(credits=100, amount=1000, amount_refunded=5000) == 100
    assert credits.clawback_target(credits=100, amount=0, amount_refunded=10) == 0


@pytest.mark.parametrize("delta", [True, 1.0, "1"])
def test_a_ledger_entry_moves_whole_credits_only(delta):
    with pytest.raises(TypeError):
        Entry("grant-x", delta, "grant", "ten_1")


def test_entry_ids_name_their_cause():
    assert credits.job_debit("gen_1", 2) == Entry("debit-gen_1", -2, "debit", "gen_1")
    assert credits.batch_debit("bat_1", 9).id == "debit-bat_1"


prices = st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(prices=prices, data=st.data())
def test_a_batch_is_paid_exactly_the_price_of_what_succeeded_however_it_is_retried(prices, data):
    # A batch is debited for every item, each completion refunds through batch_refund, each retry
    # debits the retried items again. Whatever the outcomes and retries, what the tenant paid in the
    # end is the price of the items that succeeded, and no refund is negative.
    outcome = [data.draw(st.sampled_from(OUTCOMES)) for _ in prices]
    charged, refunded = sum(prices), 0
    for _retry in range(data.draw(st.integers(min_value=0, max_value=4)) + 1):
        succeeded = sum(p for p, o in zip(prices, outcome, strict=True) if o == "succeeded")
        refund = credits.batch_refund(charged, refunded, succeeded)
        assert refund >= 0
        refunded += refund
        assert charged - refunded == succeeded
        retryable = [i for i, o in enumerate(outcome) if o != "succeeded"]
        chosen = data.draw(st.lists(st.sampled_from(retryable), unique=True)) if retryable else []
        charged += sum(prices[i] for i in chosen)
        for i in chosen:
            outcome[i] = data.draw(st.sampled_from(OUTCOMES))
    succeeded = sum(p for p, o in zip(prices, outcome, strict=True) if o == "succeeded")
    refunded += credits.batch_refund(charged, refunded, succeeded)
    assert charged - refunded == succeeded


@settings(max_examples=300, deadline=None)
@given(
    bought=st.integers(min_value=1, max_value=10_000),
    amount=st.integers(min_value=1, max_value=1_000_000),
    data=st.data(),
)
def test_clawbacks_in_any_order_and_repeated_take_back_the_refunded_share_once(bought, amount, data):
    # Stripe's amount_refunded is cumulative; events can repeat and arrive out of order. Applying
    # each as "claw back up to the target" takes back exactly the share of the largest refund seen.
    refunds = data.draw(st.lists(st.integers(min_value=1, max_value=amount), min_size=1, max_size=8))
    clawed = 0
    for refunded in refunds:
        target = credits.clawback_target(bought, amount, refunded)
        if target > clawed:
            clawed = target
        assert 0 <= clawed <= bought
    assert clawed == credits.clawback_target(bought, amount, max(refunds))
    assert clawed * amount >= bought * max(refunds)  # rounded against the buyer
    if max(refunds) == amount:
        assert clawed == bought


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=20), st.booleans(), st.booleans())))
def test_singles_debited_and_refunded_leave_exactly_the_price_of_what_succeeded(jobs):
    balance = 0
    for price, in_batch, succeeded in jobs:
        job = {"price": price, **({"batch_id": "bat_1"} if in_batch else {})}
        if in_batch:
            continue  # paid and refunded by its batch
        balance += credits.job_debit("gen_1", price).delta
        if not succeeded:
            balance += credits.single_refund(job)
    assert -balance == sum(p for p, in_batch, ok in jobs if ok and not in_batch)
