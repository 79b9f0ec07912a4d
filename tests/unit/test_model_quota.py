"""The offline model's quota (lote_local/quota.py), on a clock the test moves."""

from __future__ import annotations

import pytest

from lote_local.quota import Quota


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_quota_admits_everything():
    quota = Quota(0, Clock())
    assert all(quota.take() is None for _ in range(10_000))


def test_a_full_second_is_admitted_then_requests_wait_for_tokens():
    clock = Clock()
    quota = Quota(8, clock)
    assert [quota.take() for _ in range(8)] == [None] * 8
    assert quota.take() == pytest.approx(1 / 8)
    clock.now += 0.125
    assert quota.take() is None and quota.take() == pytest.approx(1 / 8)


def test_a_client_that_keeps_to_the_rate_is_never_refused():
    clock = Clock()
    quota = Quota(8, clock)
    for _ in range(800):  # 100 s at exactly 8/s, after the bucket is spent
        clock.now += 1 / 8
        assert quota.take() is None


def test_over_a_minute_the_quota_admits_its_rate_and_no_more():
    clock, admitted = Clock(), 0
    quota = Quota(8, clock)
    for _ in range(60 * 20):  # 20 requests a second for a minute
        clock.now += 1 / 20
        admitted += quota.take() is None
    assert 8 * 60 <= admitted <= 8 * 61


def test_the_quota_can_change_while_running():
    clock = Clock()
    quota = Quota(8, clock)
    quota.set(2)
    assert quota.rps == 2 and [quota.take() for _ in range(3)] == [None, None, 0.5]
    with pytest.raises(ValueError, match="finite number"):
        quota.set(-1)


def test_a_quota_under_one_request_per_second_admits_one_every_so_often():
    clock = Clock()
    quota = Quota(0.5, clock)
    clock.now += 2
    assert quota.take() is None and quota.take() == pytest.approx(2.0)
    clock.now += 2
    assert quota.take() is None
