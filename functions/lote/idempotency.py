"""Idempotency-Key records: the same key and body within 24 h replays the first answer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lote import ids, timeutil, transactions
from lote.answers import Answer
from lote.errors import Conflict, InvalidRequest

if TYPE_CHECKING:
    from google.cloud import firestore

COLLECTION = "idempotency"
TTL = dt.timedelta(hours=24)


class IdempotencyConflict(Conflict):
    """The key was used with a different request."""

    code = "idempotency_conflict"


@dataclass(frozen=True)
class Replay:
    """A stored answer to give again."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    def answer(self) -> Answer:
        """The first answer again, marked as a replay (`Idempotency-Replayed: true`)."""
        return Answer(self.status, self.body, {**self.headers, "Idempotency-Replayed": "true"})


def check_header(header: str | None) -> str | None:
    """The Idempotency-Key header as given (None when absent); 400 unless 1-255 printable ASCII."""
    if header is not None and (
        not 1 <= len(header) <= 255 or not header.isascii() or not header.isprintable()
    ):
        raise InvalidRequest(
            "Idempotency-Key must be 1-255 printable ASCII characters", {"header": "Idempotency-Key"}
        )
    return header


@dataclass(frozen=True)
class Key:
    """A validated Idempotency-Key bound to a tenant and a request fingerprint."""

    doc_id: str
    request_hash: str

    @classmethod
    def parse(cls, tenant_id: str, header: str | None, method: str, path: str, body: Any) -> Key | None:
        """None without a header; 400 for a malformed one."""
        if check_header(header) is None:
            return None
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return cls(ids.sha256_hex(f"{tenant_id}:{header}"), ids.sha256_hex(f"{method} {path}\n{canonical}"))

    def ref(self, db: firestore.Client) -> firestore.DocumentReference:
        """Where the record lives."""
        return db.collection(COLLECTION).document(self.doc_id)

    def check(self, snapshot: firestore.DocumentSnapshot) -> Replay | None:
        """The replay for a live record with the same request; 409 for a different request."""
        if not snapshot.exists:
            return None
        record = snapshot.to_dict() or {}
        if record["expires_at"] <= timeutil.now():
            return None  # expired; TTL deletion may lag by a day
        if record["request_hash"] != self.request_hash:
            raise IdempotencyConflict(
                "this Idempotency-Key was already used with a different request",
                {"header": "Idempotency-Key"},
            )
        return Replay(record["status"], json.loads(record["body"]), record["headers"])

    def record(
        self, tenant_id: str, status: int, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        """The document that stores an answer."""
        now = timeutil.now()
        return {
            "tenant_id": tenant_id,
            "request_hash": self.request_hash,
            "status": status,
            "body": json.dumps(body),
            "headers": headers,
            "created_at": now,
            "expires_at": now + TTL,
        }


def create_once(
    db: firestore.Client,
    ref: firestore.DocumentReference,
    doc: dict[str, Any],
    key: Key | None,
    answer: tuple[int, dict[str, Any], dict[str, str]],
    attempts: int = 60,
    also: Callable[[firestore.WriteBatch], None] | None = None,
) -> Replay | None:
    """Create `doc`, the key's record and what `also` stages (the debit: billing.credits.admit) in
    one atomic commit; the stored answer if the key was seen. An error `also` raises (402, 429)
    leaves nothing written.

    Optimistic, not a locking transaction: what `also` writes carries update-time preconditions,
    the key record is created if absent, and a lost race reads again. Dozens of requests racing for
    one tenant's balance then cost retries, not lock waits.
    """

    def build(batch: firestore.WriteBatch) -> tuple[Replay | None, bool]:
        if key is not None:
            snapshot = key.ref(db).get()
            replay = key.check(snapshot)
            if replay is not None:
                return replay, False
            record = key.record(doc["tenant_id"], *answer)
            if snapshot.exists:  # an expired record TTL has not deleted yet
                batch.update(
                    key.ref(db), record, option=db.write_option(last_update_time=snapshot.update_time)
                )
            else:
                batch.create(key.ref(db), record)
        if also is not None:
            also(batch)
        batch.create(ref, doc)
        return None, True

    return transactions.optimistic(db, build, attempts)
