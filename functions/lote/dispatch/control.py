"""The pace of model calls: the controller's rule, a pure function of what the last window saw.

The model's real capacity is unknown and moves (Gemini's per-project limits, Vertex AI's Dynamic
Shared Quota), so it is measured, not configured. A quota error (429 RESOURCE_EXHAUSTED) means the
pace is above capacity; the calls the model admitted in that window are a measurement of the
capacity itself, so the pace drops multiplicatively but never below what was just admitted, nor
below the pace less the share of its calls that were refused (admitted answers come back a model
latency late, refusals at once: at 500/s and 5 s of latency, the admitted count alone read 47/s
and pinned the pace at 74% of the quota, bench/sim). With a backlog and no quota errors the pace
rises by a step, or by a share of itself when that is more (a fixed 0.5/s took minutes to climb
back at hundreds of calls per second), probing for more. The pace stays
between a floor and the ceiling (queue.yaml's rate, which is also where it starts).

When most first calls fail outright (5xx, timeouts: the model is down, not busy), the breaker opens:
the pace becomes a trickle of probes, and it closes (resuming at half the pace it had) once a
window's probes succeed. Work that waits meanwhile is not released, so it spends no attempts.

When the model answers that the deployment cannot use it (a bad or expired key, the API or billing
disabled, a permission, the model not served here, the day's quota spent: clients/model.py's
operator trouble), no pace helps and no image is at fault: the breaker is `blocked`, with the
answer's code as its reason, until a probe (one a minute) gets an answer; then the pace it had
comes back whole (the model's capacity did not change, its door was shut). A quota that no slowing
down clears (every call refused for `starved_block_s` at the floor, and no answer naming the
quota: a per-day cap, Vertex AI's bare 429s) blocks the pool too, as `model_quota_exhausted`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Breaker(StrEnum):
    """Whether the model is answering."""

    CLOSED = "closed"  # calls go out at the pace
    OPEN = "open"  # the model fails broadly: only probes go out
    BLOCKED = "blocked"  # the deployment cannot use the model (operator trouble): only probes go out


@dataclass(frozen=True)
class Window:
    """What the model answered to the calls of one control window."""

    seconds: float
    successes: int = 0  # answered, image or not: the model worked
    quota_errors: int = 0  # 429 RESOURCE_EXHAUSTED
    failures: int = 0  # 5xx, timeouts, unreachable: the model did not work
    backlog: int = 0  # jobs waiting for the model: released and not finished, or not released yet
    # Of the calls above, those that retried a task's failed call, and how many of them failed. The
    # breaker judges first calls only: retries of items that fail on their own (a prompt the model
    # chokes on) fill the tail of a batch with failures that are no outage.
    retries: int = 0
    retry_failures: int = 0
    # Calls answered with operator trouble, and the most common code among them.
    blocked: int = 0
    blocked_reason: str = ""

    @property
    def calls(self) -> int:
        """Every call that got an answer or gave up."""
        return self.successes + self.quota_errors + self.failures

    @property
    def admitted_per_s(self) -> float:
        """Calls the model did not refuse for quota, per second: what its capacity let through."""
        return (self.successes + self.failures) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Limits:
    """The controller's settings: bounds from queue.yaml, steps from measurement (see bench)."""

    start: float  # calls/s at first, and after a restart with no state
    ceiling: float  # never above (the queue's own rate is set here too)
    floor: float = 0.2
    step: float = 0.5  # additive increase per window, calls/s ...
    step_share: float = 0.05  # ... or this share of the pace, whichever is more
    decrease: float = 0.7  # multiplicative decrease on quota errors
    breaker_share: float = 0.5  # open when this share of a window's calls failed ...
    breaker_min_calls: int = 5  # ... out of at least this many
    probe_per_s: float = 0.2  # pace while open: one probe every 5 s
    blocked_probe_per_s: float = 1 / 60  # pace while blocked: a fixed key is seen within a minute
    starved_block_s: float = 600.0  # every call refused at the floor this long: a quota that will not refill


@dataclass(frozen=True)
class Pace:
    """The controller's state: calls per second to release, the breaker, the pace to resume at."""

    rate: float
    breaker: Breaker = Breaker.CLOSED
    resume_rate: float = 0.0
    reason: str = ""  # while blocked: the operator trouble's code
    starved_s: float = 0.0  # seconds in a row at the floor with every call refused for quota


def first(limits: Limits) -> Pace:
    """The pace before any window has been seen."""
    return Pace(rate=min(limits.start, limits.ceiling))


def next_pace(pace: Pace, window: Window, limits: Limits) -> Pace:
    """The pace for the next window, from the current one and what its window saw."""
    if window.blocked > 0 and window.blocked >= window.successes:
        # The door is shut: whatever else the window saw. The pace to come back to is the one
        # before any breaker (an open breaker's trickle is no measure of the quota).
        resume = pace.resume_rate if pace.breaker is not Breaker.CLOSED else pace.rate
        return Pace(limits.blocked_probe_per_s, Breaker.BLOCKED, resume, window.blocked_reason)
    if pace.breaker is Breaker.BLOCKED:
        if window.successes > 0:
            return Pace(rate=_bounded(pace.resume_rate, limits))
        return pace
    if pace.breaker is Breaker.OPEN:
        if window.successes > 0 and window.failures <= window.successes:
            resumed = max(limits.floor, min(limits.ceiling, pace.resume_rate / 2))
            return Pace(rate=resumed)
        return pace
    first_calls, first_failures = window.calls - window.retries, window.failures - window.retry_failures
    if first_calls >= limits.breaker_min_calls and first_failures >= limits.breaker_share * first_calls:
        return Pace(rate=limits.probe_per_s, breaker=Breaker.OPEN, resume_rate=pace.rate)
    if window.quota_errors > 0:
        # The calls of this window were about the pace's worth; those refused say by how much the
        # pace is above the quota, now (admitted answers trail by the model's latency).
        refused = min(1.0, window.quota_errors / max(1.0, pace.rate * window.seconds))
        lowered = max(pace.rate * limits.decrease, window.admitted_per_s, pace.rate * (1 - refused))
        rate = _bounded(min(pace.rate, lowered), limits)
        return _starving(replace(pace, rate=rate), window, limits)
    if pace.starved_s and window.calls == 0:
        return _starving(pace, window, limits)  # at the floor a window may hold no call: time still runs
    if pace.starved_s:
        pace = replace(pace, starved_s=0.0)  # calls got through: the quota refills
    if window.backlog > 0 and window.admitted_per_s >= pace.rate / 2:
        # Only while the pace is what holds the work back: a pace far above what runs (too few
        # workers, slow calls) would otherwise grow without meaning anything.
        step = max(limits.step, pace.rate * limits.step_share)
        return replace(pace, rate=_bounded(pace.rate + step, limits))
    return pace


def _starving(pace: Pace, window: Window, limits: Limits) -> Pace:
    """Count the time at the floor with nothing admitted; past `starved_block_s` the pool is blocked
    (resuming, when a probe passes, at the starting pace)."""
    if pace.rate > limits.floor or window.admitted_per_s > 0:
        return replace(pace, starved_s=0.0)
    starved = pace.starved_s + window.seconds
    if starved >= limits.starved_block_s:
        return Pace(limits.blocked_probe_per_s, Breaker.BLOCKED, limits.start, "model_quota_exhausted")
    return replace(pace, starved_s=starved)


def _bounded(rate: float, limits: Limits) -> float:
    return max(limits.floor, min(limits.ceiling, rate))
