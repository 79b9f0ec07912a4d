"""The worker's memory budget: an attempt reserves what its images will cost before it holds them,
so a burst of large inputs waits its turn instead of running the instance out of memory.

A request in flight holds its input bytes, the model call's base64 JSON of them (the client makes
three copies: bench/RESULTS.md, "The worker's memory"), and the answer's image. An attempt reserves
OUTPUT_BYTES when it starts and INPUT_FACTOR × each input's size before reading it (the object's
size, or the URL's Content-Length, or the most an input may be). An attempt that cannot reserve
within its wait gives the job back to the queue, uncounted (worker._defer), holding nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lote.errors import LoteError

INPUT_FACTOR = 5  # the bytes, and the model call's three copies of their base64
OUTPUT_BYTES = 6 * 1024 * 1024  # the answer's JSON and its image (Gemini's are ~1.5 MB)


class MemoryBusy(LoteError):
    """The worker's memory budget stayed full for the whole wait: try the job again shortly."""

    status, code = 503, "worker_busy"


class Budget:
    """Bytes reserved by the attempts in flight, never above `limit` (but one attempt always runs,
    however large, so no job waits forever)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._ready = threading.Condition()

    def take(self, size: int, wait_s: float) -> None:
        """Reserve `size` bytes, waiting up to `wait_s`; MemoryBusy if they never fit."""
        deadline = time.monotonic() + wait_s
        with self._ready:
            while self.used and self.used + size > self.limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MemoryBusy(f"the worker's memory budget ({self.limit} bytes) is full")
                self._ready.wait(left)
            self.used += size
            self.peak = max(self.peak, self.used)

    def give(self, size: int) -> None:
        """Return `size` bytes taken before."""
        with self._ready:
            self.used -= size
            self._ready.notify_all()


class Hold:
    """One attempt's reservations, returned together when it ends."""

    def __init__(self, budget: Budget, wait_s: float) -> None:
        self._budget = budget
        self._deadline = time.monotonic() + wait_s
        self.held = 0

    def add(self, size: int) -> None:
        """Reserve `size` more bytes within what is left of the attempt's wait."""
        self._budget.take(size, max(0.0, self._deadline - time.monotonic()))
        self.held += size

    def input(self, size: int) -> None:
        """Before reading an input of `size` bytes: what holding it costs."""
        self.add(INPUT_FACTOR * size)


_BUDGETS: dict[int, Budget] = {}
_LOCK = threading.Lock()


def budget(limit: int) -> Budget:
    """The process's budget of `limit` bytes (one per limit, made on first use)."""
    with _LOCK:
        return _BUDGETS.setdefault(limit, Budget(limit))


@contextmanager
def hold(limit: int, wait_s: float) -> Iterator[Hold]:
    """An attempt's reservations against the process's budget, OUTPUT_BYTES taken at once; all
    returned when the block ends."""
    held = Hold(budget(limit), wait_s)
    try:
        held.add(OUTPUT_BYTES)
        yield held
    finally:
        if held.held:
            budget(limit).give(held.held)
