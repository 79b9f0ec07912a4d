"""The audit's invariants on hand-made documents: each rule finds what it must and nothing else."""

from __future__ import annotations

import datetime as dt

from lote.audit import rules
from lote.audit.rules import Windows
from lote.webhooks.events import delivery_id

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
WINDOWS = Windows(dt.timedelta(seconds=60), dt.timedelta(days=1))


def _job(**fields):
    return {"tenant_id": "ten_a", "status": "succeeded", "price": 1, "batch_id": None, "task_gen": 0,
            "created_at": NOW - dt.timedelta(minutes=5), "enqueued": True,
            "task_check_at": NOW + dt.timedelta(minutes=25),
            "output": {"object": "outputs/ten_a/gen_1.png"}, **fields}  # fmt: skip


def _invariants(found):
    return sorted(v.invariant for v in found)


def _check(doc, refund=None, outputs=("outputs/ten_a/gen_1.png",), deliveries=(), task=None):
    return rules.job("gen_1", doc, NOW, WINDOWS, refund, list(outputs), set(deliveries), task)


def test_a_healthy_succeeded_job_has_no_violation():
    assert _check(_job()) == []


def test_balance_must_equal_the_ledger():
    assert rules.ledger_balance("ten_a", 10, 10) == []
    [found] = rules.ledger_balance("ten_a", 11, 10)
    assert found.invariant == "balance_equals_ledger" and found.detail == {"credits": 11, "ledger": 10}


def test_refunds_exactly_when_owed():
    failed = _job(status="failed", output=None)
    assert _invariants(_check(failed, outputs=())) == ["refunded_exactly_once"]
    assert _check(failed, refund={"delta": 1}, outputs=()) == []
    assert _invariants(_check(failed, refund={"delta": 2}, outputs=())) == ["refunded_exactly_once"]
    assert _invariants(_check(_job(), refund={"delta": 1})) == ["refunded_exactly_once"]
    assert _check(_job(status="failed", output=None, batch_id="bat_x"), outputs=()) == []  # its batch refunds


def test_exactly_one_output_per_success_and_none_otherwise():
    assert _invariants(_check(_job(), outputs=())) == ["one_output_per_success"]
    two = ("outputs/ten_a/gen_1.png", "outputs/ten_a/gen_1.webp")
    assert _invariants(_check(_job(), outputs=two)) == ["one_output_per_success"]
    canceled = _job(status="canceled", output=None)
    assert _invariants(_check(canceled, refund={"delta": 1})) == ["one_output_per_success"]


def test_open_jobs_need_a_task_and_must_end_in_time():
    assert _check(_job(status="queued", output=None), outputs=(), task=True) == []
    lost = _check(_job(status="queued", output=None), outputs=(), task=False)
    assert _invariants(lost) == ["job_has_a_task"]
    never = _job(status="queued", output=None, enqueued=False)
    assert _invariants(_check(never, outputs=())) == ["job_has_a_task"]
    leased = _job(status="running", output=None, lease_until=NOW - dt.timedelta(minutes=3))
    assert _invariants(_check(leased, outputs=())) == ["job_has_a_task"]
    old = _job(status="queued", output=None, created_at=NOW - dt.timedelta(days=2))
    assert _invariants(_check(old, outputs=(), task=True)) == ["job_terminal_in_time"]
    retried = {**old, "retried_at": NOW - dt.timedelta(minutes=1)}
    assert _check(retried, outputs=(), task=True) == []
    unwatched = _job(status="queued", output=None, task_check_at=None)
    assert _invariants(_check(unwatched, outputs=(), task=True)) == ["job_has_a_task"]


def test_the_event_of_the_current_terminal_state_must_exist():
    asked = _job(webhook_url="https://example.com/h", task_gen=2)
    assert _invariants(_check(asked)) == ["one_event_per_change"]
    assert _check(asked, deliveries=[delivery_id("gen_1", "generation.succeeded", 2)]) == []
    item = _job(webhook_url="https://example.com/h", webhook_events=["generation.failed"], batch_id="bat_x")
    assert _check(item) == []  # its batch did not ask for this type


def _batch(**fields):
    return {"tenant_id": "ten_a", "status": "completed", "total": 3, "chunks": [{"r": [0, 1, 0]}],
            "charged": 3, "refunded": 1, "completions": 1, "finished_at": NOW, **fields}  # fmt: skip


TALLY = {"queued": 0, "running": 0, "succeeded": 2, "failed": 1, "canceled": 0}
ENTRIES = {"debit-bat_1": {"delta": -3}, "refund-bat_1-1": {"delta": 1}}


def test_a_healthy_finished_batch_has_no_violation():
    assert rules.batch("bat_1", _batch(), TALLY, 1, ENTRIES, 2, set()) == []


def test_batch_items_counts_and_completion():
    missing = {**TALLY, "failed": 0}
    assert "batch_items_exist" in _invariants(rules.batch("bat_1", _batch(), missing, 1, ENTRIES, 2, set()))
    open_items = {**TALLY, "failed": 0, "running": 1}
    found = rules.batch("bat_1", _batch(), open_items, 1, ENTRIES, 2, set())
    assert _invariants(found) == ["batch_counts_match_items"]
    unsettled = _batch(finished_at=None, status="running", refunded=0)
    found = rules.batch("bat_1", unsettled, TALLY, 1, {"debit-bat_1": {"delta": -3}}, 2, set())
    assert _invariants(found) == ["batch_counts_match_items"]


def test_batch_refunds_once_per_completion_net_of_successes():
    twice = {**ENTRIES, "refund-bat_1-2": {"delta": 1}}
    assert "refunded_exactly_once" in _invariants(rules.batch("bat_1", _batch(), TALLY, 1, twice, 2, set()))
    kept_too_much = _batch(refunded=0)
    found = rules.batch("bat_1", kept_too_much, TALLY, 1, {"debit-bat_1": {"delta": -3}}, 2, set())
    assert _invariants(found) == ["refunded_exactly_once"]
    retried = _batch(charged=4, refunded=2, completions=2)
    entries = {**ENTRIES, "debit-bat_1-r1": {"delta": -1}, "refund-bat_1-2": {"delta": 1}}
    assert rules.batch("bat_1", retried, TALLY, 1, entries, 2, set()) == []


def test_each_batch_completion_has_one_event():
    hooked = _batch(webhook_url="https://example.com/h", completions=2)
    first = delivery_id("bat_1", "batch.completed", 1)
    found = rules.batch("bat_1", hooked, TALLY, 1, ENTRIES, 2, {first})
    assert [v.detail.get("completion") for v in found if v.invariant == "one_event_per_change"] == [2]


def test_debits_need_their_cause():
    assert rules.debit_has_its_cause("debit-gen_1", {"reason": "debit"}, "ten_a", True) == []
    [found] = rules.debit_has_its_cause(
        "debit-gen_1", {"reason": "debit", "reference": "gen_1"}, "ten_a", False
    )
    assert found.invariant == "debit_has_its_job_or_batch"
    assert rules.debit_has_its_cause("grant-1", {"reason": "grant"}, "ten_a", False) == []


def test_a_busy_document_is_skipped_by_the_sweep_not_the_rest_of_the_pass():
    # One job still locked by a transaction a killed worker never finished used to end the pass.
    from collections import Counter

    import pytest
    from google.api_core.exceptions import Aborted, NotFound

    from lote import repair
    from lote.transactions import Contention

    done: Counter[str] = Counter()
    for error in (Aborted("lock timeout"), Contention("busy")):
        with repair._one(done, "gen_locked"):
            raise error
    assert done["skipped_busy"] == 2
    with pytest.raises(NotFound), repair._one(done, "gen_gone"):
        raise NotFound("a real fault is not hidden")


def test_a_client_token_counts_exactly_what_was_submitted_with_it_and_stays_under_its_cap():
    doc = {"tenant_id": "ten_a", "images": 3, "max_images": 3}
    assert rules.client_token("tok_a", doc, 3) == []
    assert rules.client_token("tok_a", {**doc, "max_images": None}, 3) == []
    assert rules.client_token("tok_a", doc, 2)[0].invariant == "token_images_are_counted"  # a lost job
    assert rules.client_token("tok_a", {**doc, "images": 4}, 4)[0].detail["max_images"] == 3  # over its cap


def test_a_purse_whose_slices_do_not_match_its_singles_is_named():
    held = {0: {"credits": 5, "slots": 2, "in_use": 1}, 1: {"credits": -1, "slots": 1, "in_use": 2}}
    found = rules.purse("ten_a", 4, held, {0: 1, 1: 1, 2: 1})
    assert [(v.invariant, v.subject) for v in found] == [
        ("purse_slice_not_overdrawn", "ten_a/1"),
        ("purse_slot_per_single_in_flight", "ten_a/1"),
        ("purse_slot_per_single_in_flight", "ten_a/2"),
        ("purse_slots_lent_held", "ten_a"),
    ]
    assert rules.purse("ten_a", 3, {0: {"credits": 0, "slots": 3, "in_use": 1}}, {0: 1}) == []


def test_spend_room_not_charged_nor_held_is_named():
    spend = {"day": "2026-12-05", "day_out": 30, "month_out": 100}
    slices = {0: {"room": 4, "room_day": "2026-12-05"}, 1: {"room": 6, "room_day": "2026-12-04"}}
    # 26 charged today + 4 held for today; 90 charged this month + 4 + 6 held in it.
    assert rules.spend_counted("ten_a", spend, slices, 26, 90) == []
    lost = rules.spend_counted("ten_a", spend, slices, 25, 90)  # a credit of room went nowhere
    assert [(v.invariant, v.detail["day_held"]) for v in lost] == [("spend_counted", 4)]
    overdrawn = {**slices, 2: {"room": -1, "room_day": "2026-12-05"}}
    assert [v.subject for v in rules.spend_counted("ten_a", spend, overdrawn, 27, 91)] == ["ten_a/2"]


def test_a_cancel_still_paging_long_after_the_repair_window_is_named():
    import datetime as dt

    windows = Windows(dt.timedelta(seconds=10), dt.timedelta(days=1))
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    paging = {"tenant_id": "ten_a", "cancel_pending": True, "canceled_at": now - dt.timedelta(seconds=20)}
    assert rules.batch_cancel("bat_1", paging, now, windows) == []
    stuck = {**paging, "canceled_at": now - dt.timedelta(seconds=31)}
    assert [v.invariant for v in rules.batch_cancel("bat_1", stuck, now, windows)] == [
        "batch_cancel_completes"
    ]
    assert rules.batch_cancel("bat_1", {**stuck, "cancel_pending": False}, now, windows) == []


def test_a_stripe_payment_takes_back_at_most_what_it_bought_and_its_chargebacks_are_in_the_ledger():
    from lote.audit.rules import stripe_payment

    entries = {
        "dispute-dp_1": {"delta": -750},
        "dispute-dp_2": {"delta": -100},
        "dispute-return-dp_2": {"delta": 100},
    }
    doc = {"credits": 1000, "clawed_back": 250,
           "disputes": {"dp_1": {"taken": 750}, "dp_2": {"taken": 100, "returned": True}}}  # fmt: skip
    assert stripe_payment("pi_1", doc, entries, "ten_1") == []
    over = {**doc, "clawed_back": 300}
    assert [v.invariant for v in stripe_payment("pi_1", over, entries, "ten_1")] == [
        "stripe_payment_takes_at_most_what_it_bought"
    ]
    unreturned = {k: v for k, v in entries.items() if k != "dispute-return-dp_2"}
    found = stripe_payment("pi_1", doc, unreturned, "ten_1")
    assert [(v.invariant, v.detail["entry"]) for v in found] == [
        ("dispute_in_the_ledger", "dispute-return-dp_2")
    ]


def test_a_usage_rollup_whose_day_and_hours_disagree_or_whose_counts_do_not_add_up_is_named():
    from lote.usage import rules as usage_rules

    made = usage_rules.Finished(status="succeeded", preset="none", tier="standard", model="m", price=2,
                                refund=0, reused=False, accept_to_done_ms=900, code=None)  # fmt: skip
    one: dict = {}
    for path, value in made.increments().items():
        node = one
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    assert rules.usage_rollups("ten_a", "2026-12-05", 3, one, [one]) == []
    twice: dict = {}
    usage_rules.merge(twice, one)
    usage_rules.merge(twice, one)
    lost = rules.usage_rollups("ten_a", "2026-12-05", 3, twice, [one])  # an hour lost an increment
    assert [(v.invariant, v.subject) for v in lost] == [("usage_rollups_agree", "ten_a:2026-12-05:3")]
    broken = {**one, "all": {**one["all"], "refunded": 5}}  # refunded beyond the charge
    assert ("usage_rollups_agree", "ten_a:2026-12-05:3:all") in [
        (v.invariant, v.subject) for v in rules.usage_rollups("ten_a", "2026-12-05", 3, broken, [broken])
    ]
