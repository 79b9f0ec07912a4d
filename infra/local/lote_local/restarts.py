"""When the local stack starts a crashed function again, and when it gives up (a crash loop)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestartPolicy:
    """Restart at once after a good run; back off after each quick crash; give up after a few in a row."""

    # A crash sooner than this after starting is "quick": a function that fails at import never
    # lives longer, while one killed after serving for a while is simply replaced.
    fast_s: float = 10.0
    max_fast: int = 5
    first_backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def after_crash(self, fast_crashes: int, uptime_s: float) -> tuple[int, float | None]:
        """The new count of quick crashes in a row and the delay before restarting (None: give up)."""
        if uptime_s >= self.fast_s:
            return 0, 0.0
        fast = fast_crashes + 1
        if fast >= self.max_fast:
            return fast, None
        return fast, min(self.first_backoff_s * 2 ** (fast - 1), self.max_backoff_s)
