"""The dispatcher's documents: its state per pool (`dispatch/{pool}`), and the `call` field each
attempt's end writes on its job.

The controller's inputs come from the jobs themselves: the commit that ends an attempt also
records its model call's outcome and time on the job (no extra document, no extra write), and the
dispatcher reads the window's calls with one query. Nothing is written by more than one attempt,
so nothing is hot. The state is written once per window by a transaction
that checks the window number: a duplicated tick changes nothing, a lost one makes the next
window longer (every rate is per second).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from lote import transactions
from lote.dispatch import spend
from lote.dispatch.control import Breaker

if TYPE_CHECKING:
    from google.cloud import firestore
    from google.cloud.firestore import Transaction

DISPATCH = "dispatch"
JOBS = "jobs"  # jobs/store.py's collection (see dispatch/lanes.py)
# Composite indexes of the queries below; firestore.indexes.json must hold each (a test checks).
INDEXES = [(JOBS, ("call.pool", "call.at"))]
CALLS_READ_LIMIT = 20_000
BREAKER_CACHE_S = 1.0


class Outcome(StrEnum):
    """What one model call told the controller."""

    SUCCESS = "success"  # the model answered (an image, or a refusal such as a safety block)
    QUOTA = "quota"  # 429 RESOURCE_EXHAUSTED
    FAILURE = "failure"  # 5xx, timeout, unreachable, garbage
    BLOCKED = "blocked"  # operator trouble: a bad key, the API disabled, the day's quota spent, ...


def ref(db: firestore.Client, pool: str) -> firestore.DocumentReference:
    """The pool's state document."""
    return db.collection(DISPATCH).document(pool)


def call_fields(
    pool: str,
    outcome: Outcome,
    tier: str,
    retry: bool,
    at: dt.datetime,
    ms: int | None = None,
    reason: str | None = None,
    spend: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """The `call` field an attempt's end writes on its job: the model call's outcome for the
    dispatcher (`retry` when the queue was retrying the task after a failed call, `reason` the
    operator trouble's code of a blocked call) and, for an attempt that stored an image, how long
    it took (`ms`, claim to end: what an ETA needs; a quick refusal would pull the typical attempt
    down; `spend`: a finished job's tokens by model, dispatch/spend.py)."""
    fields = {"pool": pool, "outcome": str(outcome), "tier": tier, "retry": retry, "at": at, "ms": ms}
    if reason is not None:
        fields["reason"] = reason
    if spend:
        fields["spend"] = spend
    return fields


@dataclass(frozen=True)
class Calls:
    """A window's calls: outcome counts (with `tier:{tier}`, `retry`, `retry:{outcome}`,
    `reason:{code}` of blocked calls) and the durations of the attempts that got an answer."""

    tally: Counter[str]
    answered_ms: list[int] = field(default_factory=list)
    spend: dict[str, dict[str, int]] = field(default_factory=dict)  # tokens by model of finished jobs
    spend_tiers: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # the same by tier


def calls_between(db: firestore.Client, pool: str, since: dt.datetime, until: dt.datetime) -> Calls:
    """The pool's calls recorded in [since, until). (A job called twice in one window counts once:
    its last call.)"""
    from google.cloud.firestore import FieldFilter

    query = (
        db.collection(JOBS)
        .where(filter=FieldFilter("call.pool", "==", pool))
        .where(filter=FieldFilter("call.at", ">=", since))
        .where(filter=FieldFilter("call.at", "<", until))
        .select(["call"])
        .limit(CALLS_READ_LIMIT)
    )
    tally: Counter[str] = Counter()
    answered: list[int] = []
    spent: dict[str, dict[str, int]] = {}
    tiers: dict[str, dict[str, dict[str, int]]] = {}
    for snapshot in query.stream():
        call = (snapshot.to_dict() or {}).get("call") or {}
        if call.get("spend"):
            spend.add(spent, call["spend"])
            spend.add(tiers.setdefault(str(call.get("tier")), {}), call["spend"])
        tally[str(call.get("outcome"))] += 1
        tally[f"tier:{call.get('tier')}"] += 1
        if call.get("reason"):
            tally[f"reason:{call['reason']}"] += 1
        if call.get("retry"):
            tally["retry"] += 1
            tally[f"retry:{call.get('outcome')}"] += 1
        if call.get("outcome") == Outcome.SUCCESS and call.get("ms") is not None:
            answered.append(int(call["ms"]))
    return Calls(tally, answered, spent, tiers)


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
        seen = int(previous.get("window", -1)) if previous else -1
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


@dataclass(frozen=True)
class Facts:
    """What jobs' statuses need from the pool: whether its breaker is open, and how long an
    attempt that reaches the model takes now (smoothed; None before the first measured window)."""

    opened_at: dt.datetime | None  # open or blocked since (None while closed)
    attempt_ms: int | None
    measured_at: dt.datetime | None = None  # the last tick's time: how fresh the measures are
    blocked_reason: str | None = None  # while blocked: the operator trouble's code


_facts_cache: dict[str, tuple[float, Facts]] = {}
_facts_lock = threading.Lock()


def facts(db: firestore.Client, pool: str) -> Facts:
    """The pool's Facts, read at most once a second per process (every status read wants them)."""
    now = time.monotonic()
    with _facts_lock:
        cached = _facts_cache.get(pool)
    if cached is not None and now - cached[0] < BREAKER_CACHE_S:
        return cached[1]
    doc = load(db, pool) or {}
    breaker = doc.get("breaker")
    opened = doc.get("opened_at") if breaker in (Breaker.OPEN, Breaker.BLOCKED) else None
    measured = doc.get("attempt_ms")
    reason = doc.get("blocked_reason") if breaker == Breaker.BLOCKED else None
    found = Facts(opened, int(measured) if measured is not None else None, doc.get("run_at"), reason)
    with _facts_lock:
        _facts_cache[pool] = (now, found)
    return found


def breaker_opened_at(db: firestore.Client, pool: str) -> dt.datetime | None:
    """When the pool's breaker opened (None while closed), read at most once a second per process."""
    return facts(db, pool).opened_at


def add_spend(
    db: firestore.Client, pool: str, now: dt.datetime, tiers: dict[str, dict[str, dict[str, int]]]
) -> None:
    """Add finished jobs' tokens (`{tier: {model: counts}}`) to the pool's spend by day, outside any
    tick (batch mode's model batch jobs end when their lines land, not in a window)."""

    def run(tx: Transaction) -> None:
        snapshot = ref(db, pool).get(transaction=tx)
        stored = snapshot.to_dict() or {}
        flat: dict[str, dict[str, int]] = {}
        for models in tiers.values():
            spend.add(flat, models)
        tx.set(snapshot.reference, {
            "pool": pool, "spend": spend.by_day(stored.get("spend"), flat, now),
            "spend_tiers": spend.by_tier_day(stored.get("spend_tiers"), tiers, now),
        }, merge=True)  # fmt: skip

    transactions.run(db, run)
