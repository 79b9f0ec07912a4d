"""Batch mode's rules (pure): when held items make a model batch job, how often a submitted one is
looked at, what a request line's key is, and what each end of a model batch job means for its jobs.

A model batch job moves gathered → submitted → ended. Its jobs are `running` with `model_batch`
{id, key} from the gathering on, under a lease as long as the batch mode deadline, so a lost model
batch job still frees them (the repair sweep restarts an expired lease online).

| Gemini's end         | its jobs                                                                 |
|----------------------|--------------------------------------------------------------------------|
| SUCCEEDED            | each line lands as an online attempt would; a job with no line goes online |
| CANCELLED (by lote)  | canceled (every job had asked for it)                                    |
| FAILED, EXPIRED, CANCELLED otherwise, or past the deadline | back to online dispatch, attempt uncounted |
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

POLL_MAX_S = 300.0  # a look at a running model batch job at least every 5 minutes


class State(StrEnum):
    """Where a model batch job is on lote's side."""

    GATHERED = "gathered"  # its jobs are marked; the submission task is due
    SUBMITTED = "submitted"  # Gemini has it; a poll task is due
    ENDED = "ended"  # its lines have landed and its other jobs went where they go


def key_of(job_id: str, task_gen: int) -> str:
    """A request line's key: the job and its task generation (a job sent back and gathered again is
    a new occurrence, with a new key)."""
    return f"{job_id}-{task_gen}"


def job_of_key(key: str) -> str:
    """The job a line's key names."""
    return key.rsplit("-", 1)[0]


def flush(count: int, oldest: dt.datetime | None, now: dt.datetime, items: int, max_age_s: float) -> bool:
    """Whether `count` held requests (the oldest held since `oldest`) make a model batch job now: a
    full one, or one whose oldest request has waited long enough."""
    if count <= 0:
        return False
    if count >= items:
        return True
    return oldest is not None and (now - oldest).total_seconds() >= max_age_s


def next_poll_s(seq: int, first_s: float) -> float:
    """How long after look `seq` the next one comes: doubling from `first_s`, at most POLL_MAX_S."""
    return float(min(POLL_MAX_S, first_s * 2 ** max(0, seq - 1)))


def past_deadline(submitted_at: dt.datetime | None, now: dt.datetime, deadline_s: float) -> bool:
    """Whether a submitted model batch job has run longer than lote waits for one."""
    return submitted_at is not None and (now - submitted_at).total_seconds() > deadline_s
