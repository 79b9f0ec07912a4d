"""Usage rollups: `usage/{tenant}:{period}:{shard}` (period: a UTC hour "2026-12-05T13" or day
"2026-12-05"), nested maps of integers: `all`, `preset`, `tier`, `model`, `status` → group → counts
and a latency histogram `lat`; `codes` → failed images by code.

Written only by a job's terminal transition (jobs/store.end), as increments in the commit that ends
the job, so each image is counted exactly once and no rollup is read to write it; read by get_all
of the documents a report covers (no query, no index)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from lote.usage import rules

if TYPE_CHECKING:
    from google.cloud import firestore

USAGE = "usage"
KEPT = dt.timedelta(days=400)  # a year of history to compare with, then the TTL deletes it


def ref(db: firestore.Client, tenant_id: str, period: str, shard: int) -> firestore.DocumentReference:
    """Where one shard of a tenant's period lives."""
    return db.collection(USAGE).document(f"{tenant_id}:{period}:{shard}")


def stage(commit: Any, db: firestore.Client, tenant_id: str, job_id: str, done: rules.Finished,
          at: dt.datetime) -> None:  # fmt: skip
    """Into the commit that ends a job: its image counted in its hour's and its day's rollup (blind
    increments on its shard: nothing read, nothing to lose a race on)."""
    from google.cloud.firestore import Increment

    fields: dict[str, Any] = {}
    for path, value in done.increments().items():
        node = fields
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = Increment(value)
    shard = rules.shard_of(job_id)
    for granularity in ("hour", "day"):
        period = rules.period_key(at, granularity)
        meta = {"tenant_id": tenant_id, "period": period, "expires_at": rules.period_start(period) + KEPT}
        commit.set(ref(db, tenant_id, period, shard), {**meta, **fields}, merge=True)


def read(db: firestore.Client, tenant_id: str, periods: list[str]) -> dict[str, dict[str, Any]]:
    """Each period's shards merged (periods nothing finished in are absent); one batched read of
    len(periods) × SHARDS documents."""
    refs = [ref(db, tenant_id, p, s) for p in periods for s in range(rules.SHARDS)]
    merged: dict[str, dict[str, Any]] = {}
    for snapshot in db.get_all(refs):
        if snapshot.exists:
            doc = snapshot.to_dict() or {}
            rules.merge(merged.setdefault(str(doc.get("period")), {}), rules.counts_of(doc))
    return merged


def shards_of_day(
    db: firestore.Client, tenant_id: str, day: str
) -> dict[int, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Each shard of a tenant's day that counted something: its day rollup and its hours' (the
    audit's check), read in one read-only transaction so a job ending meanwhile is in both or in
    neither. Two batched reads: the day's SHARDS documents, then the hours of the shards that exist
    (a quiet tenant costs 16 reads, not 400)."""
    from google.cloud import firestore as fs

    hours = [f"{day}T{hour:02d}" for hour in range(24)]

    def read(tx: Any) -> dict[int, tuple[dict[str, Any], list[dict[str, Any]]]]:
        day_refs = [ref(db, tenant_id, day, shard) for shard in range(rules.SHARDS)]
        found: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        for snapshot in db.get_all(day_refs, transaction=tx):
            if snapshot.exists:
                found[_shard(snapshot.id)] = (rules.counts_of(snapshot.to_dict() or {}), [])
        hour_refs = [ref(db, tenant_id, hour, shard) for shard in found for hour in hours]
        for snapshot in db.get_all(hour_refs, transaction=tx) if hour_refs else []:
            if snapshot.exists:
                found[_shard(snapshot.id)][1].append(rules.counts_of(snapshot.to_dict() or {}))
        return found

    result: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = fs.transactional(read)(
        db.transaction(read_only=True)
    )
    return result


def _shard(document_id: str) -> int:
    return int(document_id.rsplit(":", 1)[1])
