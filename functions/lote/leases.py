"""Leases: one attempt at a time on a document (a job, a webhook delivery), whoever delivers the task.

A task may be delivered twice at once (Cloud Tasks is at-least-once). The attempt that takes the
lease does the work; a concurrent one finds it held ("busy") and backs off; one that finds the work
finished or superseded does nothing ("noop").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from lote import timeutil, transactions

if TYPE_CHECKING:
    from google.cloud import firestore


class ClaimKind(StrEnum):
    """What trying to start an attempt came to."""

    CLAIMED = "claimed"
    NOOP = "noop"
    BUSY = "busy"


@dataclass(frozen=True)
class Claim:
    """Outcome of trying to start an attempt: the document as claimed, and why not when it was not."""

    kind: ClaimKind
    doc: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    retry_after: int = 0


def noop(reason: str, doc: dict[str, Any] | None = None) -> Claim:
    """Nothing to do: the work is missing, finished or superseded."""
    return Claim(ClaimKind.NOOP, doc or {}, reason)


def busy(reason: str, doc: dict[str, Any], retry_after: int = 0) -> Claim:
    """Another attempt holds the lease."""
    return Claim(ClaimKind.BUSY, doc, reason, retry_after)


def held(doc: dict[str, Any], now: dt.datetime) -> bool:
    """Whether the document's lease is live."""
    return doc.get("lease_until") is not None and doc["lease_until"] > now


Judge = Callable[[dict[str, Any] | None, dt.datetime], Claim | dict[str, Any]]


def take(db: firestore.Client, ref: firestore.DocumentReference, judge: Judge, attempts: int = 20) -> Claim:
    """Read the document, let `judge` refuse (a Claim) or return the update that takes the lease,
    and write it preconditioned on the update time that was read; a lost race reads again.

    Not a transaction: a transaction's locks outlive a process that dies holding them (the Firestore
    emulator keeps them about a minute), and a worker killed mid-claim then stalled the retry of its
    job and the repair sweep. A preconditioned write holds no lock."""

    def build(batch: firestore.WriteBatch) -> tuple[Claim, bool]:
        snapshot = ref.get()
        doc = snapshot.to_dict() if snapshot.exists else None
        verdict = judge(doc, timeutil.now())
        if isinstance(verdict, Claim):
            return verdict, False
        batch.update(ref, verdict, option=db.write_option(last_update_time=snapshot.update_time))
        return Claim(ClaimKind.CLAIMED, {**(doc or {}), **verdict}), True

    return transactions.optimistic(db, build, attempts)
