"""An api instance admits a bounded number of submissions at once and answers the rest fast."""

from __future__ import annotations

import threading

import pytest

from lote.api import overload
from lote.settings import Settings


def test_a_submission_without_a_turn_gets_429_overloaded_at_once_and_a_freed_turn_admits():
    settings = Settings(admission_concurrency=2, admission_wait_ms=50)
    inside, release = threading.Barrier(3), threading.Event()

    def hold() -> None:
        with overload.turn(settings):
            inside.wait()
            release.wait()

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for holder in holders:
        holder.start()
    inside.wait()  # both turns are held
    with pytest.raises(overload.Overloaded) as refused, overload.turn(settings):
        pass
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "1"}
    release.set()
    for holder in holders:
        holder.join()
    with overload.turn(settings):  # the turns came back
        pass


def test_retry_after_is_the_time_to_admit_everyone_waiting_at_the_recent_pace():
    assert overload.retry_after_s(0, 50.0) == 1  # keeping up: come back at once
    assert overload.retry_after_s(99, 50.0) == 2  # 100 to admit at 50/s
    assert overload.retry_after_s(1000, 20.0) == overload.RETRY_AFTER_MAX_S  # never more than the cap
    assert overload.retry_after_s(5, 0.0) == overload.RETRY_AFTER_MAX_S  # nothing admitted lately
    assert overload.retry_after_s(0, 0.0) == 1
