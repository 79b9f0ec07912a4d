"""Plan limits enforced in Firestore, so every function instance sees the same counts.

Request rate: one small document per admitted request in `rate_hits`, counted with count() over
the key's current one-minute window. No document is written twice, so a busy key never makes a
hot document (a counter document would take every request's write). Concurrent requests can
overshoot the limit by at most the requests in flight at that instant; the count is exact
otherwise.

Images in flight: single generations queued or running, counted inside the optimistic commit
that debits the tenant (see billing/credits.py, admit), so racing submissions serialize on the
tenant document's update time and the limit is exact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lote import bulk
from lote.errors import TooManyRequests
from lote.statuses import IN_FLIGHT

if TYPE_CHECKING:
    from google.cloud import firestore

RATE_HITS = "rate_hits"
WINDOW_S = 60
# Composite indexes of the queries below (firestore.indexes.json must hold each; a test checks).
INDEXES = [
    (RATE_HITS, ("key", "window")),
    ("jobs", ("tenant_id", "batch_id", "status")),
]


class RateLimited(TooManyRequests):
    """The key used its requests for this minute."""

    code = "rate_limited"


@dataclass(frozen=True)
class RateState:
    """Where a key stands in its window; rendered as the RateLimit-* headers."""

    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """RateLimit-Limit/Remaining/Reset (seconds until the window resets)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }


@dataclass(frozen=True)
class Window:
    """One fixed one-minute window of the rate limit."""

    number: int
    reset_s: int

    @classmethod
    def at(cls, now: dt.datetime) -> Window:
        """The window `now` falls in, and whole seconds until it ends (at least 1)."""
        epoch = now.timestamp()
        number = int(epoch // WINDOW_S)
        return cls(number, max(1, int((number + 1) * WINDOW_S - epoch + 0.999)))


def used(db: firestore.Client, rate_key: str, window: Window) -> int:
    """Requests the key made in the window (one count() query; runs beside the key's lookup)."""
    from google.cloud.firestore import FieldFilter

    hits = db.collection(RATE_HITS)
    query = hits.where(filter=FieldFilter("key", "==", rate_key)).where(
        filter=FieldFilter("window", "==", window.number)
    )
    return bulk.count(query)


def admit(
    db: firestore.Client, rate_key: str, per_minute: int, window: Window, used_so_far: int
) -> RateState:
    """Record this request in the key's window; 429 `rate_limited` when the window is used up."""
    if used_so_far >= per_minute:
        state = RateState(per_minute, 0, window.reset_s)
        raise RateLimited(
            f"this key may make {per_minute} requests per minute; retry in {window.reset_s} s",
            {"limit": per_minute, "reset_seconds": window.reset_s},
            headers={**state.headers(), "Retry-After": str(window.reset_s)},
        )
    expires = dt.datetime.fromtimestamp((window.number + 2) * WINDOW_S, tz=dt.UTC)
    db.collection(RATE_HITS).document().create(
        {"key": rate_key, "window": window.number, "expires_at": expires}
    )
    return RateState(per_minute, max(0, per_minute - used_so_far - 1), window.reset_s)


def singles_in_flight(db: firestore.Client, tenant_id: str) -> int:
    """Single generations (not batch items) of the tenant that are queued or running."""
    from google.cloud.firestore import FieldFilter

    query = (
        db.collection("jobs")
        .where(filter=FieldFilter("tenant_id", "==", tenant_id))
        .where(filter=FieldFilter("batch_id", "==", None))
        .where(filter=FieldFilter("status", "in", list(IN_FLIGHT)))
    )
    return bulk.count(query)
