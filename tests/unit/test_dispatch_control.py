"""The controller's rule (dispatch/control.py): examples, and simulated runs against a quota."""

from __future__ import annotations

import datetime as dt

import pytest

from lote.dispatch.control import Breaker, Limits, Pace, Window, first, next_pace

LIMITS = Limits(start=8, ceiling=20)
WINDOW_S = 2.0


def test_it_starts_at_the_starting_rate_never_above_the_ceiling():
    assert first(LIMITS).rate == 8
    assert first(Limits(start=50, ceiling=20)).rate == 20


def test_quota_errors_lower_the_pace_but_not_below_what_the_model_admitted():
    pace = Pace(rate=20)
    # 40 calls in 2 s, 16 admitted (8/s): the capacity is 8/s, so the pace goes down to it in steps
    lowered = next_pace(pace, Window(WINDOW_S, successes=16, quota_errors=24, backlog=100), LIMITS)
    assert lowered.rate == 14  # 20 × 0.7, still above the 8/s admitted
    again = next_pace(lowered, Window(WINDOW_S, successes=16, quota_errors=12, backlog=100), LIMITS)
    assert again.rate == pytest.approx(9.8)
    settled = next_pace(again, Window(WINDOW_S, successes=16, quota_errors=4, backlog=100), LIMITS)
    assert settled.rate == 8  # max(6.86, 8 admitted)


def test_with_a_backlog_and_no_quota_errors_the_pace_rises_by_a_step_up_to_the_ceiling():
    assert next_pace(Pace(rate=4), Window(WINDOW_S, successes=8, backlog=50), LIMITS).rate == 4.5
    assert next_pace(Pace(rate=19.8), Window(WINDOW_S, successes=40, backlog=50), LIMITS).rate == 20


def test_the_pace_holds_without_a_backlog_or_when_it_is_not_what_holds_work_back():
    assert next_pace(Pace(rate=4), Window(WINDOW_S, successes=8, backlog=0), LIMITS).rate == 4
    # Only 1/s runs at a pace of 10/s (slow calls, few workers): raising the pace means nothing.
    assert next_pace(Pace(rate=10), Window(WINDOW_S, successes=2, backlog=500), LIMITS).rate == 10


def test_the_breaker_opens_when_most_calls_fail_and_closes_at_half_the_pace_once_probes_succeed():
    down = Window(WINDOW_S, successes=2, failures=14, backlog=100)
    opened = next_pace(Pace(rate=12), down, LIMITS)
    assert (opened.breaker, opened.rate, opened.resume_rate) == (Breaker.OPEN, LIMITS.probe_per_s, 12)
    assert next_pace(opened, Window(WINDOW_S, failures=1, backlog=100), LIMITS) == opened  # probe failed
    closed = next_pace(opened, Window(WINDOW_S, successes=1, backlog=100), LIMITS)
    assert (closed.breaker, closed.rate) == (Breaker.CLOSED, 6)


def test_a_few_failures_or_too_few_calls_do_not_open_the_breaker():
    assert (
        next_pace(Pace(rate=10), Window(WINDOW_S, successes=15, failures=5, backlog=9), LIMITS).breaker
        == "closed"
    )
    assert next_pace(Pace(rate=1), Window(WINDOW_S, failures=4, backlog=9), LIMITS).breaker == "closed"


def test_a_lost_window_is_a_longer_window():
    # A controller run that was lost makes the next one see twice the time: rates stay per second.
    assert Window(4.0, successes=32).admitted_per_s == Window(2.0, successes=16).admitted_per_s == 8


def _run(quota_at, pace: Pace, seconds: float, backlog: int = 10_000) -> list[tuple[float, float, float]]:
    """A fluid model of the loop: each window releases pace × seconds calls; the model admits up to
    its quota and refuses the rest. Returns (time, pace, admitted/s) per window."""
    out, t = [], 0.0
    while t < seconds:
        quota = quota_at(t)
        calls = pace.rate * WINDOW_S
        admitted = min(calls, quota * WINDOW_S)
        window = Window(
            WINDOW_S, successes=round(admitted), quota_errors=round(calls - admitted), backlog=backlog
        )
        out.append((t, pace.rate, admitted / WINDOW_S))
        pace = next_pace(pace, window, LIMITS)
        t += WINDOW_S
    return out


@pytest.mark.parametrize("start", [20.0, 4.0])  # 2.5× too high, 2× too low
def test_the_pace_converges_on_the_quota_and_uses_at_least_95_percent_of_it(start):
    run = _run(lambda t: 8.0, Pace(rate=start), seconds=300)
    used = [admitted for t, _, admitted in run if t >= 30]
    assert sum(used) / len(used) >= 0.95 * 8


def test_the_pace_follows_a_quota_that_halves_and_recovers_within_30_seconds():
    quota = lambda t: 4.0 if 120 <= t < 240 else 8.0  # noqa: E731
    run = _run(quota, Pace(rate=8), seconds=400)
    after_drop = [t for t, rate, _ in run if t >= 120 and rate <= 4 * 1.15]
    assert after_drop and after_drop[0] - 120 <= 30
    after_rise = [t for t, _, admitted in run if t >= 240 and admitted >= 8 * 0.95]
    assert after_rise and after_rise[0] - 240 <= 30
    late = [admitted for t, _, admitted in run if t >= 280]
    assert sum(late) / len(late) >= 0.95 * 8


def test_failing_retries_alone_do_not_open_the_breaker():
    # The tail of a batch: only items that fail on their own are left, retried by the queue.
    tail = Window(WINDOW_S, successes=1, failures=20, retries=21, retry_failures=20, backlog=20)
    assert next_pace(Pace(rate=10), tail, LIMITS).breaker == "closed"
    outage = Window(WINDOW_S, successes=1, failures=20, retries=10, retry_failures=10, backlog=20)
    assert next_pace(Pace(rate=10), outage, LIMITS).breaker == "open"  # fresh calls fail too


def test_the_state_records_when_the_breaker_opened_and_forgets_it_when_it_closes():
    from lote.dispatch.service import next_state

    bounds, t0, t1 = (
        Limits(start=10, ceiling=20),
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
    )
    first = next_state(None, Window(WINDOW_S), bounds, t0, 0, 0)
    assert first["rate"] == 10 and first["breaker"] == "closed" and first["opened_at"] is None
    down = Window(WINDOW_S, successes=1, failures=20, backlog=50)
    opened = next_state(first, down, bounds, t1, 40, 0)
    assert opened["breaker"] == "open" and opened["opened_at"] == t1
    still = next_state(
        opened, Window(WINDOW_S, failures=1, backlog=50), bounds, t1 + dt.timedelta(seconds=2), 40, 0
    )
    assert still["opened_at"] == t1  # open since t1, not since the last window
    closed = next_state(
        still, Window(WINDOW_S, successes=1, backlog=50), bounds, t1 + dt.timedelta(seconds=4), 40, 0
    )
    assert closed["breaker"] == "closed" and closed["opened_at"] is None and closed["rate"] == 5


def _release_over(singles_per_window: list[int], rate: float = 10.0) -> tuple[float, int]:
    """Windows of the dispatcher's state and budget at a fixed pace, singles arriving as given:
    (batch calls released in all, singles' calls in all)."""
    from lote.dispatch.service import budget, next_state
    from lote.settings import Settings

    settings = Settings(dispatch_window_s=WINDOW_S, dispatch_interactive_share=0.2)
    bounds, now = Limits(start=rate, ceiling=rate), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    state = next_state(None, Window(WINDOW_S), bounds, now, 0, 0)
    released = 0.0
    for singles in singles_per_window:
        now += dt.timedelta(seconds=WINDOW_S)
        state = next_state(state, Window(WINDOW_S, successes=10, backlog=100), bounds, now, 0, singles)
        released += budget(settings, state, 0, WINDOW_S)
    return released, sum(singles_per_window)


def test_batches_give_way_to_singles_only_as_much_as_singles_use():
    # One single every 5 s at 10/s for 300 s (2 s windows): singles take ~2% of the pace, and the
    # batches' share falls by about that, not by the whole reserved share.
    arrivals = [1 if (i * 2) % 5 < 2 else 0 for i in range(150)]
    released, singles = _release_over(arrivals)
    assert singles == 60
    assert 3000 - singles - 5 <= released <= 3000 - singles + 5
    # None at all: batches take the whole pace.
    assert _release_over([0] * 150)[0] == 3000


def test_a_burst_of_singles_holds_back_at_most_twice_the_interactive_share():
    released, _ = _release_over([40] * 10)  # far above the pace: 20 singles/s
    assert released == pytest.approx(10 * 10 * WINDOW_S * (1 - 2 * 0.2))


def test_the_typical_attempt_is_the_windows_median_smoothed_and_kept_through_quiet_windows():
    from lote.dispatch.service import next_state

    bounds, now = Limits(start=10, ceiling=20), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first = next_state(None, Window(WINDOW_S), bounds, now, 0, 0)
    assert first["attempt_ms"] is None
    measured = next_state(first, Window(WINDOW_S, successes=3), bounds, now, 0, 3, [900, 1_000, 30_000])
    assert measured["attempt_ms"] == 1_000  # the median: one slow call does not move it
    slower = next_state(measured, Window(WINDOW_S, successes=1), bounds, now, 0, 1, [3_000])
    assert slower["attempt_ms"] == 2_000  # half the past, half the window
    quiet = next_state(slower, Window(WINDOW_S), bounds, now, 0, 0, [])
    assert quiet["attempt_ms"] == 2_000


def test_singles_restart_the_measures_only_when_they_are_stale():
    from lote.dispatch.service import stale

    now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert stale(None, now, 300)  # never measured
    assert not stale(now - dt.timedelta(seconds=299), now, 300)
    assert stale(now - dt.timedelta(seconds=300), now, 300)


def test_quota_errors_lower_the_pace_by_the_share_refused_when_admitted_answers_trail():
    # 1,050 calls at 525/s: 84 refused at once, 699 answers back (the model's 5 s of latency trails
    # them). Before: max(525 × 0.7, 349.5 admitted/s) = 367.5, 74% of the 500/s quota, for minutes.
    seen = Window(WINDOW_S, successes=699, quota_errors=84, backlog=5000)
    lowered = next_pace(Pace(rate=525), seen, Limits(start=750, ceiling=750))
    assert lowered.rate == pytest.approx(525 * (1 - 84 / 1050))  # 483/s


def test_the_pace_climbs_by_a_share_of_itself_when_that_is_more_than_the_step():
    climbed = next_pace(
        Pace(rate=368), Window(WINDOW_S, successes=736, backlog=5000), Limits(368, ceiling=750)
    )
    assert climbed.rate == pytest.approx(368 * 1.05)


def test_no_work_queued_ahead_holds_back_the_probes_while_the_breaker_is_open():
    from lote.dispatch.service import budget
    from lote.settings import Settings

    settings = Settings(dispatch_window_s=WINDOW_S)
    probing = {"rate": 0.2, "breaker": "open", "carry": 0.0}
    # Two jobs waiting out a retry's backoff used to be "ahead" of the 0.4 calls a window allows.
    assert budget(settings, probing, 2, WINDOW_S) == pytest.approx(0.4)
    assert budget(settings, {**probing, "breaker": "closed"}, 2, WINDOW_S) == 0.0


def test_a_restart_by_the_sweep_is_new_work_for_the_breaker_but_not_for_the_retry_window():
    from lote.jobs import recovery

    released = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.UTC)
    job = {
        "created_at": released,
        "released_at": released,
        "restarted_at": released + dt.timedelta(minutes=5),
    }
    assert recovery.breaker_start(job) == released + dt.timedelta(minutes=5)
    assert recovery.cycle_start(job) == released  # the queue's retry and abandon windows go on
    assert recovery.breaker_start({"created_at": released}) == released


def test_operator_trouble_blocks_dispatch_until_a_probe_passes_then_the_pace_comes_back_whole():
    # A key that expired overnight: every call says so. No pace helps; probes go out a minute apart.
    expired = Window(WINDOW_S, blocked=6, blocked_reason="model_key_invalid", backlog=500)
    blocked = next_pace(Pace(rate=12), expired, LIMITS)
    assert (blocked.breaker, blocked.rate, blocked.resume_rate) == (
        Breaker.BLOCKED,
        LIMITS.blocked_probe_per_s,
        12,
    )
    assert blocked.reason == "model_key_invalid"
    assert next_pace(blocked, Window(WINDOW_S, backlog=500), LIMITS) == blocked  # no probe answered yet
    assert (
        next_pace(blocked, Window(WINDOW_S, failures=1, backlog=500), LIMITS) == blocked
    )  # nor did this one
    fixed = next_pace(blocked, Window(WINDOW_S, successes=1, backlog=500), LIMITS)
    assert (fixed.breaker, fixed.rate, fixed.reason) == (Breaker.CLOSED, 12, "")  # the capacity never changed


def test_a_block_wins_over_an_open_breaker_and_keeps_the_pace_from_before_either():
    opened = next_pace(Pace(rate=12), Window(WINDOW_S, failures=10, backlog=9), LIMITS)
    day_spent = Window(WINDOW_S, blocked=1, blocked_reason="model_quota_per_day", backlog=9)
    blocked = next_pace(opened, day_spent, LIMITS)
    assert (blocked.breaker, blocked.resume_rate, blocked.reason) == (
        Breaker.BLOCKED,
        12,
        "model_quota_per_day",
    )
    # Calls that got through outnumber the refusals (the day turned mid-window): not blocked.
    assert (
        next_pace(Pace(rate=12), Window(WINDOW_S, successes=5, blocked=1, backlog=9), LIMITS).breaker
        == "closed"
    )


def test_the_state_keeps_the_block_and_its_reason_and_counts_from_the_first_breaker():
    from lote.dispatch.service import next_state
    from lote.dispatch.views import waiting_reason

    bounds, t0 = Limits(start=10, ceiling=20), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    state = next_state(None, Window(WINDOW_S), bounds, t0, 0, 0)
    opened = next_state(
        state, Window(WINDOW_S, failures=9, backlog=9), bounds, t0 + dt.timedelta(seconds=2), 9, 0
    )
    refused = Window(WINDOW_S, blocked=2, blocked_reason="model_access_denied", backlog=9)
    blocked = next_state(opened, refused, bounds, t0 + dt.timedelta(seconds=4), 9, 0)
    assert blocked["breaker"] == "blocked" and blocked["blocked_reason"] == "model_access_denied"
    assert blocked["opened_at"] == opened["opened_at"]  # work released before the first breaker waits held
    assert waiting_reason(blocked["breaker"], blocked["blocked_reason"]) == "model_access_denied"
    back = next_state(
        blocked, Window(WINDOW_S, successes=1, backlog=9), bounds, t0 + dt.timedelta(seconds=6), 9, 0
    )
    assert back["breaker"] == "closed" and back["opened_at"] is None and back["blocked_reason"] is None
    assert waiting_reason(back["breaker"], back["blocked_reason"]) is None


def test_a_quota_no_slowdown_clears_blocks_the_pool_after_ten_minutes_at_the_floor():
    # A per-day cap answered with bare 429s (Vertex AI, or a Help link only): the pace falls to its
    # floor, and every call is still refused; at the floor some windows hold no call at all.
    pace = Pace(rate=8)
    refused = Window(WINDOW_S, quota_errors=3, backlog=500)
    elapsed = 0.0
    while pace.breaker is Breaker.CLOSED:
        window = refused if int(elapsed / WINDOW_S) % 2 == 0 else Window(WINDOW_S, backlog=500)
        pace = next_pace(pace, window, LIMITS)
        elapsed += WINDOW_S
        assert elapsed < 2000, pace
    assert pace.reason == "model_quota_exhausted" and pace.rate == LIMITS.blocked_probe_per_s
    assert LIMITS.starved_block_s <= elapsed < LIMITS.starved_block_s + 60
    resumed = next_pace(pace, Window(WINDOW_S, successes=1, backlog=500), LIMITS)
    assert (resumed.breaker, resumed.rate) == (Breaker.CLOSED, LIMITS.start)


def test_a_quota_that_lets_some_calls_through_never_blocks_the_pool():
    pace = Pace(rate=8)
    for _ in range(1000):
        pace = next_pace(pace, Window(WINDOW_S, successes=1, quota_errors=3, backlog=500), LIMITS)
    assert pace.breaker is Breaker.CLOSED and pace.starved_s == 0
