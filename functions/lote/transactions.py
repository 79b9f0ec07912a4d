"""Running Firestore transactions and optimistic commits (preconditioned batches): retries, then a
429 the caller may retry."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from lote import logs
from lote.errors import TooManyRequests

if TYPE_CHECKING:
    from google.cloud import firestore

T = TypeVar("T")
log = logging.getLogger("lote.transactions")
SLOW_S = 1.0  # an optimistic commit slower than this is logged with what it lost to


class Contention(TooManyRequests):
    """A document is too busy right now (a transaction or an optimistic commit lost every retry);
    retry shortly.

    429, not 503: the service is up, this record is overloaded, and Retry-After says when to come
    back (to Cloud Tasks both slow the queue the same way)."""

    code = "contention"


def run(db: firestore.Client, body: Callable[[firestore.Transaction], T], attempts: int = 20) -> T:
    """Run `body` in a transaction, retried by the client on contention up to `attempts` times."""
    from google.api_core.exceptions import Aborted
    from google.cloud import firestore as fs

    try:
        result: T = fs.transactional(body)(db.transaction(max_attempts=attempts))
    except ValueError as exc:
        # The client raises a bare ValueError("Failed to commit transaction in N attempts") from
        # the last ABORTED: that is contention, not a bug.
        if isinstance(exc.__cause__, Aborted):
            # Counted by Terraform's `firestore_contention` log metric (the dashboard's chart).
            logs.emit(log, logging.WARNING, "firestore.contention",
                      "transaction gave up after %d attempts: 429", attempts, kind="transaction",
                      attempts=attempts)  # fmt: skip
            raise Contention(
                "too many concurrent changes to the same record; retry", headers={"Retry-After": "1"}
            ) from exc
        raise
    return result


def optimistic(
    db: firestore.Client,
    build: Callable[[firestore.WriteBatch], tuple[T, bool]],
    attempts: int = 60,
    deadline_s: float = 10.0,
) -> T:
    """Read, decide, commit one atomic batch; a lost race (precondition or create-if-absent) reads again.

    `build` reads what it needs, adds writes guarded by update-time preconditions or `create`, and
    returns (result, whether to commit). No lock is held between the reads and the commit, so racing
    callers cost retries, not lock waits.
    """
    import random
    import time

    from google.api_core.exceptions import Aborted, AlreadyExists, FailedPrecondition

    # A commit that waits on a lock (Aborted) already took seconds: past this, answer 429 rather
    # than hold the client beyond its timeout.
    began = time.monotonic()
    deadline = began + deadline_s
    lost: list[str] = []
    for attempt in range(attempts):
        if attempt and time.monotonic() > deadline:
            break
        batch = db.batch()
        result, commit = build(batch)
        if not commit:
            return result
        try:
            batch.commit()
        except (AlreadyExists, FailedPrecondition, Aborted) as exc:
            # Aborted: the commit waited for a document a transaction held (a lock timeout); the
            # same as a lost race, read again.
            lost.append(type(exc).__name__)
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter, not security
            continue
        if time.monotonic() - began > SLOW_S:
            log.info("optimistic commit took %.1f s after %d lost tries: %s", time.monotonic() - began,
                     len(lost), ", ".join(lost))  # fmt: skip
        return result
    said = "optimistic commit gave up after %d lost tries: %s"
    logs.emit(log, logging.WARNING, "firestore.contention", said, len(lost), ", ".join(lost),
              kind="optimistic", attempts=len(lost))  # fmt: skip
    raise Contention("too many concurrent changes to this record; retry", headers={"Retry-After": "1"})
