"""A batch's progress from its tally: one set of formulas for the route, the checker, the settle and
the webhook event."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from lote.batches import progress

STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
BATCH = {"status": "running", "total": 10, "chunks": [{"r": [0, 1, 0]}],
         "created_at": dt.datetime(2026, 11, 23, tzinfo=dt.UTC)}  # fmt: skip


def test_items_not_yet_fanned_out_count_as_queued():
    tally = {"queued": 1, "running": 1, "succeeded": 2, "failed": 0, "canceled": 0}
    counts = progress.counts(tally, 10)
    assert (counts.queued, counts.total) == (7, 10)
    assert progress.percent(tally, 10) == 20.0 and progress.remaining(tally, 10) == 8


def test_an_item_counted_twice_by_counts_read_apart_is_counted_once():
    # It finished between the `running` count and the `succeeded` count.
    tally = {"queued": 0, "running": 1, "succeeded": 7, "failed": 0, "canceled": 0}
    counts = progress.counts(tally, 7)
    assert (counts.queued, counts.running, counts.succeeded) == (0, 0, 7)
    racing = {"queued": 2, "running": 3, "succeeded": 6, "failed": 0, "canceled": 0}  # 11 seen of 10
    assert progress.counts(racing, 10).model_dump() == {
        "total": 10, "queued": 1, "running": 3, "succeeded": 6, "failed": 0, "canceled": 0}  # fmt: skip


def test_an_empty_batch_is_done_and_a_cancel_before_running_is_not_a_start():
    empty = dict.fromkeys(STATUSES, 0)
    assert progress.percent(empty, 0) == 100.0 and progress.finished(empty, 0, fanned_out=True)
    assert not progress.started({**empty, "canceled": 3})
    assert progress.started({**empty, "failed": 1})


def test_finished_needs_the_fan_out_too():
    tally = {**dict.fromkeys(STATUSES, 0), "succeeded": 10}
    assert progress.finished(tally, 10, fanned_out=True) and not progress.finished(
        tally, 10, fanned_out=False
    )


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=5, max_size=5), st.integers(-100, 300))
def test_the_rendered_counts_always_add_up(numbers, extra):
    tally = dict(zip(STATUSES, numbers, strict=True))
    total = max(progress.terminal(tally), sum(numbers) + extra)  # counts read apart may overshoot
    view = progress.render("https://api", "bat_x", {**BATCH, "total": total}, tally, 1, rate_per_s=2.0)
    counts = view.counts
    assert counts.queued + counts.running + counts.succeeded + counts.failed + counts.canceled == total
    assert 0.0 <= view.progress <= 100.0
    assert view.links.results == "https://api/v1/batches/bat_x/results.jsonl"


@given(st.floats(min_value=1e-300, max_value=1e6), st.integers(1, 100_000))
def test_the_eta_follows_the_batch_share_and_is_none_when_the_share_is_next_to_nothing(share, queued):
    # An open breaker decays a lane's rate toward 0: the ETA once overflowed the datetime range (a 500).
    tally = {"queued": queued, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
    view = progress.render(
        "https://api", "bat_x", {**BATCH, "total": queued}, tally, 1, 2.0, share_per_s=share
    )
    if queued / share <= progress.MAX_ETA_S:
        assert view.eta is not None
    else:
        assert view.eta is None
