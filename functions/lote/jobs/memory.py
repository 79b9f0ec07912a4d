"""The worker's memory budget: an attempt reserves what its images may cost before it holds any of
them, so a burst of large inputs waits its turn instead of running the instance out of memory.

A request in flight holds its input bytes, the model call's base64 JSON of them (the client makes
three copies: bench/RESULTS.md, "The worker's memory"), and the answer's image. An attempt reserves,
all at once, OUTPUT_BYTES and INPUT_FACTOR × the most each of its inputs may be; once each input is
read it gives back what that input did not need (by the bytes read, never by what headers claimed).
Reserving all at once, never piece by piece, is what keeps attempts from each holding part of the
budget while waiting for more (the first version did, and a batch of four-photo items livelocked).
An attempt that cannot reserve within its wait gives its job back to the queue, uncounted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lote.errors import LoteError
from lote.images import MAX_INPUT_BYTES

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
    """One attempt's reservation: taken whole, given back as it turns out smaller, and returned
    entirely when the attempt ends."""

    def __init__(self, budget: Budget, held: int) -> None:
        self._budget = budget
        self.held = held

    def input(self, size: int) -> None:
        """An input of `size` bytes was read: give back what was reserved beyond it."""
        spare = INPUT_FACTOR * max(0, MAX_INPUT_BYTES - size)
        if spare:
            self._budget.give(spare)
            self.held -= spare


_BUDGETS: dict[int, Budget] = {}
_LOCK = threading.Lock()


def budget(limit: int) -> Budget:
    """The process's budget of `limit` bytes (one per limit, made on first use)."""
    with _LOCK:
        return _BUDGETS.setdefault(limit, Budget(limit))


def worst_case(inputs: int) -> int:
    """What an attempt with `inputs` input images reserves before it knows their sizes."""
    return OUTPUT_BYTES + inputs * INPUT_FACTOR * MAX_INPUT_BYTES


@contextmanager
def hold(limit: int, inputs: int, wait_s: float) -> Iterator[Hold]:
    """An attempt's reservation against the process's budget, for `inputs` images of any size;
    MemoryBusy when it does not fit within `wait_s`. All of it is returned when the block ends."""
    shared = budget(limit)
    shared.take(worst_case(inputs), wait_s)
    held = Hold(shared, worst_case(inputs))
    try:
        yield held
    finally:
        shared.give(held.held)
