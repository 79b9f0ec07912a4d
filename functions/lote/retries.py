"""The queue's stop rule, seen from a handler: will Cloud Tasks retry if this attempt fails?"""

from __future__ import annotations

import datetime as dt

from lote import timeutil

AGE_MARGIN_S = 30.0


def is_last_attempt(
    max_attempts: int,
    max_retry_s: float,
    retry_count: int,
    since: dt.datetime,
    now: dt.datetime | None = None,
) -> bool:
    """Whether the queue stops after this attempt (both limits reached; -1 / 0 mean unlimited).

    Age is counted from `since`, never later than the first dispatch, plus a margin: a handler gives
    up no later than the queue does, so nothing is left without a task and without a final state.
    `now` is the clock's unless given (the simulator's time, bench/sim).
    """
    attempts = retry_count + 1
    age = ((now or timeutil.now()) - since).total_seconds() + AGE_MARGIN_S
    unlimited_attempts, unlimited_age = max_attempts == -1, max_retry_s <= 0
    if unlimited_attempts and unlimited_age:
        return False
    attempts_done = unlimited_attempts or attempts >= max_attempts
    age_done = unlimited_age or age >= max_retry_s
    return attempts_done and age_done
