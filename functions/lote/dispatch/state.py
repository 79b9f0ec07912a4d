"""The dispatcher's documents: its state per pool (`dispatch/{pool}`) and one record per model call.

The controller's inputs come from `model_calls`: one small document per call (its outcome and
time, deleted by TTL), counted per window by the dispatcher. No document is written per call by
more than one writer, so nothing is hot. The state is written once per window by a transaction
that checks the window number: a duplicated tick changes nothing, a lost one makes the next
window longer (every rate is per second).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from lote import transactions
from lote.dispatch.control import Breaker

if TYPE_CHECKING:
    from google.cloud import firestore
    from google.cloud.firestore import Transaction

DISPATCH = "dispatch"
MODEL_CALLS = "model_calls"
# Composite indexes of the queries below; firestore.indexes.json must hold each (a test checks).
INDEXES = [(MODEL_CALLS, ("pool", "at"))]
CALLS_READ_LIMIT = 20_000
BREAKER_CACHE_S = 1.0


class Outcome(StrEnum):
    """What one model call told the controller."""

    SUCCESS = "success"  # the model answered (an image, or a refusal such as a safety block)
    QUOTA = "quota"  # 429 RESOURCE_EXHAUSTED
    FAILURE = "failure"  # 5xx, timeout, unreachable, garbage


def ref(db: firestore.Client, pool: str) -> firestore.DocumentReference:
    """The pool's state document."""
    return db.collection(DISPATCH).document(pool)


def call_record(
    db: firestore.Client, call_id: str, pool: str, outcome: Outcome, tier: str, retry: bool, at: dt.datetime
) -> tuple[firestore.DocumentReference, dict[str, Any]]:
    """The document of one model call (`call_id`: the job, task generation and attempt); `retry`
    when the queue was retrying its task after a failed call."""
    doc = {"pool": pool, "outcome": str(outcome), "tier": tier, "retry": retry, "at": at,
           "expires_at": at + dt.timedelta(days=1)}  # fmt: skip
    return db.collection(MODEL_CALLS).document(call_id), doc


def calls_between(db: firestore.Client, pool: str, since: dt.datetime, until: dt.datetime) -> Counter[str]:
    """Outcomes of the pool's calls recorded in [since, until), with `tier:{tier}`, `retry` and
    `retry:{outcome}` counts."""
    from google.cloud.firestore import FieldFilter

    query = (
        db.collection(MODEL_CALLS)
        .where(filter=FieldFilter("pool", "==", pool))
        .where(filter=FieldFilter("at", ">=", since))
        .where(filter=FieldFilter("at", "<", until))
        .select(["outcome", "tier", "retry"])
        .limit(CALLS_READ_LIMIT)
    )
    tally: Counter[str] = Counter()
    for snapshot in query.stream():
        call = snapshot.to_dict() or {}
        tally[str(call.get("outcome"))] += 1
        tally[f"tier:{call.get('tier')}"] += 1
        if call.get("retry"):
            tally["retry"] += 1
            tally[f"retry:{call.get('outcome')}"] += 1
    return tally


def load(db: firestore.Client, pool: str) -> dict[str, Any] | None:
    """The pool's state, or None before the first tick."""
    return ref(db, pool).get().to_dict()


def advance(
    db: firestore.Client, pool: str, window: int, compute: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> tuple[dict[str, Any] | None, bool]:
    """Move the state to `window` with `compute(previous)`, once: (state, True) for the tick that
    did; (state, False) for a duplicate of that window; (None, False) for a tick already overtaken."""

    def run(tx: Transaction) -> tuple[dict[str, Any] | None, bool]:
        snapshot = ref(db, pool).get(transaction=tx)
        previous = snapshot.to_dict() if snapshot.exists else None
        seen = int(previous["window"]) if previous else -1
        if seen > window:
            return None, False
        if seen == window:
            return previous, False
        state = {**compute(previous), "window": window}
        tx.set(snapshot.reference, state)
        return state, True

    return transactions.run(db, run)


def record_release(db: firestore.Client, pool: str, window: int, fields: dict[str, Any]) -> None:
    """What the tick of `window` released (its duplicates then release nothing)."""
    ref(db, pool).update({**fields, "released_window": window})


_breaker_cache: dict[str, tuple[float, dt.datetime | None]] = {}
_breaker_lock = threading.Lock()


def breaker_opened_at(db: firestore.Client, pool: str) -> dt.datetime | None:
    """When the pool's breaker opened (None while closed), read at most once a second per process."""
    now = time.monotonic()
    with _breaker_lock:
        cached = _breaker_cache.get(pool)
    if cached is not None and now - cached[0] < BREAKER_CACHE_S:
        return cached[1]
    doc = load(db, pool) or {}
    opened = doc.get("opened_at") if doc.get("breaker") == Breaker.OPEN else None
    with _breaker_lock:
        _breaker_cache[pool] = (now, opened)
    return opened
