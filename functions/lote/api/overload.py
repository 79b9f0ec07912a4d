"""Answering fast under overload: an api instance works on at most LOTE_ADMISSION_CONCURRENCY
submissions at once; one that cannot start within LOTE_ADMISSION_WAIT_MS is answered 429
`overloaded` with Retry-After, instead of queueing behind the others until every answer is late.

Only the admission is gated (authentication, validation, the commit, the enqueue): a `Prefer: wait`
that follows holds its thread, not a turn, so waiting end users never slow accepting new work.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from lote.errors import TooManyRequests
from lote.settings import Settings

RETRY_AFTER_MAX_S = 10


class Overloaded(TooManyRequests):
    """This instance is admitting as much as it can; another try (or instance) will get in."""

    code = "overloaded"


def retry_after_s(waiting: int, admitted_per_s: float, cap: int = RETRY_AFTER_MAX_S) -> int:
    """Seconds to come back after: about the time this instance needs to admit everyone waiting
    for a turn now (and the one refused), at its recent pace; 1 s while it keeps up, at most `cap`.
    A fixed second sent a crowd of 1,000 waiting end users back 21,558 times (bench, issue 23)."""
    if admitted_per_s <= 0:
        return cap if waiting > 0 else 1
    return max(1, min(cap, math.ceil((waiting + 1) / admitted_per_s)))


class _Gate:
    """An instance's turns, the submissions waiting for one, and its admissions per second lately."""

    def __init__(self, concurrency: int) -> None:
        self.turns = threading.BoundedSemaphore(concurrency)
        self.lock = threading.Lock()
        self.waiting = 0
        self.recent: collections.deque[float] = collections.deque()  # turns given back, last RATE_S

    def admitted_per_s(self, now: float) -> float:
        with self.lock:
            while self.recent and now - self.recent[0] > RATE_S:
                self.recent.popleft()
            return len(self.recent) / RATE_S


RATE_S = 5.0  # the window the pace of admissions is measured over


@lru_cache(maxsize=8)
def _gate(concurrency: int) -> _Gate:
    # One per process (per setting): turns are the instance's, whichever app serves the request.
    return _Gate(concurrency)


@contextmanager
def turn(settings: Settings) -> Iterator[None]:
    """Hold one of the instance's admission turns for the block; 429 `overloaded` when none frees
    up within the wait (nothing was read or written yet), with Retry-After from retry_after_s."""
    gate = _gate(settings.admission_concurrency)
    with gate.lock:
        gate.waiting += 1
    try:
        got = gate.turns.acquire(timeout=settings.admission_wait_ms / 1000)
    finally:
        with gate.lock:
            gate.waiting -= 1
            waiting = gate.waiting
    if not got:
        # Nothing measured yet (a cold instance): as if each turn took a second.
        pace = gate.admitted_per_s(time.monotonic()) or float(settings.admission_concurrency)
        wait = retry_after_s(waiting, pace)
        raise Overloaded(
            "this instance is accepting as many submissions as it can right now; retry shortly",
            {"retry_after_seconds": wait},
            headers={"Retry-After": str(wait)},
        )
    try:
        yield
    finally:
        gate.turns.release()
        now = time.monotonic()
        with gate.lock:
            gate.recent.append(now)
            while now - gate.recent[0] > RATE_S:  # bounded: only the last RATE_S seconds are kept
                gate.recent.popleft()
