"""The offline model's quota: requests per second it admits, as a per-project model quota does.

A token bucket that holds one second of requests (at least one): a client that keeps to the rate is
never refused, one that goes over gets 429 RESOURCE_EXHAUSTED with a RetryInfo saying when a request
would pass again. The rate can be changed while the server runs (`POST /quota`), to act out a shared
capacity (Vertex AI's Dynamic Shared Quota) that moves with everyone else's load. Our own model of
Gemini's behaviour: Google documents the 429 and RetryInfo, not the bucket behind them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class Quota:
    """Admits up to `rps` requests per second (0: no quota); thread-safe."""

    def __init__(self, rps: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rps = 0.0
        self._tokens = 0.0
        self._at = clock()
        self.set(rps)

    @property
    def rps(self) -> float:
        """The current quota (0: none)."""
        return self._rps

    def set(self, rps: float) -> None:
        """Change the quota now; the bucket starts full at the new size."""
        if rps < 0 or not math.isfinite(rps):
            raise ValueError("a quota is a finite number of requests per second, 0 for none")
        with self._lock:
            self._rps, self._tokens, self._at = rps, rps, self._clock()

    def take(self) -> float | None:
        """Admit one request (None), or refuse it: the seconds until one would be admitted."""
        with self._lock:
            if self._rps <= 0:
                return None
            now = self._clock()
            # At least one request fits, or a quota under 1/s would refuse every call.
            self._tokens = min(max(1.0, self._rps), self._tokens + (now - self._at) * self._rps)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / self._rps
