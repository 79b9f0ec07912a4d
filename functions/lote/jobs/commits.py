"""How a job's transition commits: optimistically (read, decide, one batch preconditioned on the
job's update time: no lock, so a worker killed mid-finish blocks nobody), and, when that keeps losing
its race, in a transaction, whose locks make the others wait.

Losing every race happens to a refund: it writes the tenant's balance, which a tenant's stream of
admissions (optimistic too) keeps changing. Before the fallback such a finish gave up after 10 s,
and the job waited for its lease to expire and was generated again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lote import transactions

if TYPE_CHECKING:
    from google.cloud import firestore

    from lote.webhooks.events import Outbox

T = TypeVar("T")
OPTIMISTIC_TRIES = 12
OPTIMISTIC_DEADLINE_S = 3.0
TX_ATTEMPTS = 20  # the emulator serializes contended transactions; give them room


@dataclass(frozen=True)
class Writer:
    """One try of a transition: its reads and writes, in a batch (`locked` False) or a transaction."""

    db: firestore.Client
    commit: Any  # firestore.WriteBatch or firestore.Transaction
    locked: bool

    def get(self, reference: firestore.DocumentReference) -> firestore.DocumentSnapshot:
        """Read a document (inside the transaction when locked; reads come before any write)."""
        return reference.get(transaction=self.commit) if self.locked else reference.get()

    def update(self, snapshot: firestore.DocumentSnapshot, fields: Mapping[str, Any]) -> None:
        """Write the document read as `snapshot`; in a batch, only if nothing wrote it since."""
        if self.locked:
            self.commit.update(snapshot.reference, dict(fields))
        else:
            option = self.db.write_option(last_update_time=snapshot.update_time)
            self.commit.update(snapshot.reference, dict(fields), option=option)


def run(db: firestore.Client, outbox: Outbox | None, body: Callable[[Writer], tuple[T, bool]]) -> T:
    """Run `body` (returns its result and whether to commit) optimistically, then locked. What a
    try that did not commit staged in `outbox` is forgotten, so no event is enqueued for it."""
    mark = len(outbox.staged) if outbox is not None else 0

    def rewind() -> None:
        if outbox is not None:
            del outbox.staged[mark:]

    def optimistic(batch: firestore.WriteBatch) -> tuple[T, bool]:
        rewind()
        return body(Writer(db, batch, locked=False))

    def locked(tx: firestore.Transaction) -> T:
        rewind()
        return body(Writer(db, tx, locked=True))[0]

    try:
        return transactions.optimistic(db, optimistic, OPTIMISTIC_TRIES, OPTIMISTIC_DEADLINE_S)
    except transactions.Contention:
        return transactions.run(db, locked, TX_ATTEMPTS)
