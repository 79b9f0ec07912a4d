"""Firestore in bulk: many writes in parallel batches, and count() aggregations."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.cloud import firestore

ALREADY_EXISTS = 6
FAILED_PRECONDITION = 9
NOT_FOUND = 5
_EXPECTED = {ALREADY_EXISTS, FAILED_PRECONDITION, NOT_FOUND}
_MAX_ATTEMPTS = 8


class BulkWriteError(RuntimeError):
    """Writes that failed for a reason other than the document's state (retry the whole step)."""


@dataclass
class Outcome:
    """Which documents were written, and which were refused because of their state."""

    written: set[str] = field(default_factory=set)
    refused: dict[str, int] = field(default_factory=dict)


def write(
    db: firestore.Client,
    creates: Iterable[tuple[firestore.DocumentReference, dict[str, Any]]] = (),
    updates: Iterable[tuple[firestore.DocumentReference, dict[str, Any], Any]] = (),
) -> Outcome:
    """Create and conditionally update documents with a BulkWriter (batches of 20, in parallel).

    A create of an existing document, or an update whose precondition no longer holds, is refused,
    not retried: re-running a step is harmless. Anything else is retried, then raised.
    """
    outcome = Outcome()
    failures: list[str] = []
    lock = threading.Lock()
    writer = db.bulk_writer()

    def on_result(reference: Any, _result: Any, _writer: Any) -> None:
        with lock:
            outcome.written.add(reference.id)

    def on_error(error: Any, _writer: Any) -> bool:
        reference = error.operation.reference
        if error.code in _EXPECTED:
            with lock:
                outcome.refused[reference.id] = error.code
            return False
        if error.attempts < _MAX_ATTEMPTS:
            return True
        with lock:
            failures.append(f"{reference.id}: {error.code} {error.message}")
        return False

    writer.on_write_result(on_result)
    writer.on_write_error(on_error)
    expected: set[str] = set()
    for reference, data in creates:
        writer.create(reference, data)
        expected.add(reference.id)
    for reference, data, option in updates:
        writer.update(reference, data, option=option)
        expected.add(reference.id)
    writer.close()
    # A batch the server refuses whole (e.g. a reserved field name) reaches neither callback: the
    # writer only logs it. Every write must be accounted for, or the step is not done.
    unanswered = expected - outcome.written - set(outcome.refused)
    if failures or unanswered:
        first = failures[0] if failures else f"{sorted(unanswered)[0]}: no answer from the server"
        raise BulkWriteError(f"{len(failures) + len(unanswered)} writes failed, first: {first}")
    return outcome


def count(query: Any) -> int:
    """count() of a query: one billed read per 1,000 index entries, no documents read."""
    return counted(query)[0]


def counted(query: Any, read_time: Any = None) -> tuple[int, Any]:
    """count() of a query as the database stood at `read_time` (now if None), and the time it read at:
    several counts at one read time see one snapshot, so a document moving between them is counted once."""
    result = query.count(alias="n").get(read_time=read_time)
    return int(result[0][0].value), result[0][0].read_time


def flagged_before(
    db: Any, collection: str, flag: str, value: bool, time_field: str, cutoff: Any, limit: int
) -> list[Any]:
    """Documents whose `flag` is `value` and whose `time_field` is before `cutoff` (the repair
    sweep's queries; each needs a composite index on (flag, time_field))."""
    from google.cloud.firestore import FieldFilter

    query = (
        db.collection(collection)
        .where(filter=FieldFilter(flag, "==", value))
        .where(filter=FieldFilter(time_field, "<", cutoff))
        .limit(limit)
    )
    return list(query.stream())
