"""Cloud Tasks' retry rules as the emulator implements them."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from lote_local.tasks.rules import RetryPolicy, retry_after_seconds


def test_backoff_matches_the_worked_example_in_queue_proto():
    policy = RetryPolicy(min_backoff=10, max_backoff=300, max_doublings=3)
    assert [policy.backoff(k) for k in range(1, 9)] == [10, 20, 40, 80, 160, 240, 300, 300]


def test_zero_doublings_is_linear():
    policy = RetryPolicy(min_backoff=10, max_backoff=200, max_doublings=0)
    assert [policy.backoff(k) for k in range(1, 6)] == [10, 20, 30, 40, 50]


@pytest.mark.parametrize(
    ("attempts_limit", "age_limit", "attempts", "age", "exhausted"),
    [
        (5, 0, 4, 999, False),
        (5, 0, 5, 0, True),  # no age limit: attempts decide
        (-1, 60, 100, 59, False),
        (-1, 60, 1, 60, True),  # unlimited attempts: age decides
        (5, 60, 5, 59, False),  # both set: both must be reached
        (5, 60, 4, 61, False),
        (5, 60, 5, 60, True),
        (-1, 0, 10_000, 10**9, False),  # both unlimited: forever
    ],
)
def test_retrying_stops_when_both_limits_are_reached(attempts_limit, age_limit, attempts, age, exhausted):
    policy = RetryPolicy(max_attempts=attempts_limit, max_retry_duration=age_limit)
    assert policy.exhausted(attempts, age) is exhausted


def test_retry_after_accepts_seconds_and_http_dates():
    now = 1_000_000.0
    assert retry_after_seconds("3", now) == 3
    assert retry_after_seconds(formatdate(now + 10, usegmt=True), now) == pytest.approx(10, abs=1)
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
