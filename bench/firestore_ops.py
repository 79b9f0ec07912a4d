"""Counting billed Firestore operations at the client, by wrapping the GAPIC client's RPCs."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from google.cloud.firestore_v1.services.firestore.client import FirestoreClient


@dataclass
class Ops:
    """Billed operations: reads, writes, deletes."""

    reads: int = 0
    writes: int = 0
    deletes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, reads: int = 0, writes: int = 0, deletes: int = 0) -> None:
        """Count some operations."""
        with self.lock:
            self.reads += reads
            self.writes += writes
            self.deletes += deletes

    def snapshot(self) -> tuple[int, int, int]:
        """(reads, writes, deletes) so far."""
        with self.lock:
            return self.reads, self.writes, self.deletes


def _request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return kwargs.get("request", args[0] if args else None)


def _writes(request: Any) -> tuple[int, int]:
    writes = request.get("writes", []) if isinstance(request, dict) else list(request.writes)
    deletes = sum(1 for w in writes if getattr(w, "delete", "") or (isinstance(w, dict) and w.get("delete")))
    return len(writes) - deletes, deletes


@contextmanager
def counting() -> Iterator[Ops]:
    """Count every billed operation any Firestore client in this process makes inside the block."""
    ops = Ops()
    originals: dict[str, Callable[..., Any]] = {}

    def wrap(name: str, count: Callable[[Any, Any], Any]) -> None:
        original = getattr(FirestoreClient, name)
        originals[name] = original

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            return count(_request(args, kwargs), original(self, *args, **kwargs))

        setattr(FirestoreClient, name, wrapper)

    def commit(request: Any, response: Any) -> Any:
        writes, deletes = _writes(request)
        ops.add(writes=writes, deletes=deletes)
        return response

    def stream(per_item: Callable[[Any], int], minimum: int) -> Callable[[Any, Any], Any]:
        def count(_request: Any, responses: Any) -> Any:
            def counted() -> Iterator[Any]:
                # Counted as they arrive: callers such as DocumentReference.get() stop early.
                total = 0
                for response in responses:
                    reads = per_item(response)
                    total += reads
                    ops.add(reads=reads)
                    yield response
                if total < minimum:
                    ops.add(reads=minimum - total)

            return counted()

        return count

    def aggregation_reads(response: Any) -> int:
        fields = response.result.aggregate_fields if "result" in response else {}
        entries = sum(int(v.integer_value) for v in fields.values()) if fields else 0
        return max(1, math.ceil(entries / 1000)) if fields else 0

    wrap("commit", commit)
    wrap("batch_write", commit)
    wrap("batch_get_documents", stream(lambda r: 1 if ("found" in r or "missing" in r) else 0, 0))
    wrap("run_query", stream(lambda r: 1 if "document" in r else 0, 1))
    wrap("run_aggregation_query", stream(aggregation_reads, 1))
    try:
        yield ops
    finally:
        for name, original in originals.items():
            setattr(FirestoreClient, name, original)
