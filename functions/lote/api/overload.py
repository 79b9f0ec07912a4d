"""Answering fast under overload: an api instance works on at most LOTE_ADMISSION_CONCURRENCY
submissions at once; one that cannot start within LOTE_ADMISSION_WAIT_MS is answered 429
`overloaded` with Retry-After, instead of queueing behind the others until every answer is late.

Only the admission is gated (authentication, validation, the commit, the enqueue): a `Prefer: wait`
that follows holds its thread, not a turn, so waiting end users never slow accepting new work.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from lote.errors import TooManyRequests
from lote.settings import Settings

RETRY_AFTER_S = 1


class Overloaded(TooManyRequests):
    """This instance is admitting as much as it can; another try (or instance) will get in."""

    code = "overloaded"


@lru_cache(maxsize=8)
def _gate(concurrency: int) -> threading.BoundedSemaphore:
    # One per process (per setting): turns are the instance's, whichever app serves the request.
    return threading.BoundedSemaphore(concurrency)


@contextmanager
def turn(settings: Settings) -> Iterator[None]:
    """Hold one of the instance's admission turns for the block; 429 `overloaded` when none frees
    up within the wait (nothing was read or written yet)."""
    gate = _gate(settings.admission_concurrency)
    if not gate.acquire(timeout=settings.admission_wait_ms / 1000):
        raise Overloaded(
            "this instance is accepting as many submissions as it can right now; retry shortly",
            {"retry_after_seconds": RETRY_AFTER_S},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    try:
        yield
    finally:
        gate.release()
