"""The rate limit's one-minute windows, at chosen instants (no waiting for the clock)."""

from __future__ import annotations

import datetime as dt

import pytest

from lote.tenants import limits

MINUTE = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("offset_s", "same_window", "reset_s"),
    [(0.0, True, 60), (0.001, True, 60), (0.5, True, 60), (30.0, True, 30), (59.2, True, 1), (59.999, True, 1),
     (60.0, False, 60)],
)  # fmt: skip
def test_a_window_is_one_wall_clock_minute_and_reset_is_whole_seconds_to_its_end(
    offset_s, same_window, reset_s
):
    window = limits.Window.at(MINUTE + dt.timedelta(seconds=offset_s))
    assert (window.number == limits.Window.at(MINUTE).number) is same_window
    assert window.reset_s == reset_s


def test_a_used_up_window_refuses_with_the_seconds_to_its_end_and_writes_nothing():
    window = limits.Window.at(MINUTE + dt.timedelta(seconds=45))
    with pytest.raises(limits.RateLimited) as refused:
        limits.admit(None, "key", 10, window, used_so_far=10)  # type: ignore[arg-type]
    assert refused.value.status == 429
    assert refused.value.headers == {
        "RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "15", "Retry-After": "15",
    }  # fmt: skip
