"""The arithmetic of usage: which rollup a finished image counts in, what it adds, and how a report
is made of rollups (merged counts; percentiles from a log-scale histogram). Pure functions.

A rollup is one document per tenant, period (UTC hour and UTC day) and shard: the shard comes from
the job's id, so a tenant finishing many images a second spreads its increments over SHARDS
documents (as the purse spreads admissions), and a report reads buckets × SHARDS documents,
however many images they count.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lote import ids

SHARDS = 16
Granularity = Literal["hour", "day"]
Dimension = Literal["preset", "tier", "model", "status"]
DIMENSIONS: tuple[Dimension, ...] = ("preset", "tier", "model", "status")
COUNTS = ("images", "succeeded", "failed", "canceled", "reused", "charged", "refunded")
# Accept → done, in buckets growing by 10%: a percentile read from them is within 10% of the truth.
GROWTH = 1.1


def period_key(at: dt.datetime, granularity: Granularity) -> str:
    """The UTC hour ("2026-12-05T13") or day ("2026-12-05") `at` is in."""
    at = at.astimezone(dt.UTC)
    return at.strftime("%Y-%m-%dT%H") if granularity == "hour" else at.strftime("%Y-%m-%d")


def period_start(key: str) -> dt.datetime:
    """When a period key's hour or day starts (UTC)."""
    form = "%Y-%m-%dT%H" if "T" in key else "%Y-%m-%d"
    return dt.datetime.strptime(key, form).replace(tzinfo=dt.UTC)


def periods(start: dt.datetime, end: dt.datetime, granularity: Granularity) -> list[str]:
    """Every period key from the one holding `start` up to the one before `end` (end exclusive)."""
    step = dt.timedelta(hours=1) if granularity == "hour" else dt.timedelta(days=1)
    first = period_start(period_key(start, granularity))
    found, at = [], first
    while at < end:
        found.append(period_key(at, granularity))
        at += step
    return found


def shard_of(job_id: str) -> int:
    """The rollup shard a job counts in (stable: the same job always lands in the same one)."""
    return int(ids.sha256_hex(job_id)[:8], 16) % SHARDS


def latency_bucket(ms: int) -> int:
    """The histogram bucket of an accept → done time: [GROWTH^b, GROWTH^(b+1)) ms."""
    return 0 if ms < 1 else int(math.log(ms) / math.log(GROWTH))


def bucket_ms(bucket: int) -> int:
    """What a percentile falling in `bucket` is reported as: the bucket's geometric middle."""
    return round(GROWTH ** (bucket + 0.5))


def safe(value: str) -> str:
    """A group's name as a rollup field name part (Firestore field paths: no dots, no backticks)."""
    return value.replace(".", "_").replace("`", "_")[:100] or "none"


@dataclass(frozen=True)
class Finished:
    """One image's end, as usage counts it."""

    status: str
    preset: str
    tier: str
    model: str
    price: int
    refund: int
    reused: bool
    accept_to_done_ms: int
    code: str | None
    model_micros: int = 0  # what its model calls cost lote, in micro-USD (operators' view only)

    def increments(self) -> dict[tuple[str, ...], int]:
        """Field path (as parts) → increment, for every dimension and for `all`."""
        counts = {"images": 1, self.status: 1, "charged": self.price, "refunded": self.refund,
                  "reused": int(self.reused), "model_micros": self.model_micros}  # fmt: skip
        found: dict[tuple[str, ...], int] = {}
        groups = [("all",), *((d, safe(getattr(self, d))) for d in DIMENSIONS)]
        for group in groups:
            for name, value in counts.items():
                if value:
                    found[(*group, name)] = value
            if self.status == "succeeded":
                found[(*group, "lat", str(latency_bucket(self.accept_to_done_ms)))] = 1
        if self.status == "failed" and self.code:
            found[("codes", safe(self.code))] = 1
        return found


def merge(into: dict[str, Any], doc: Mapping[str, Any]) -> None:
    """Add a rollup document's counts into `into` (nested maps of integers)."""
    for key, value in doc.items():
        if isinstance(value, Mapping):
            merge(into.setdefault(key, {}), value)
        elif isinstance(value, int) and not isinstance(value, bool):
            into[key] = int(into.get(key, 0)) + value


def percentile(histogram: Mapping[str, int], q: float) -> int | None:
    """The `q` quantile (0..1) of a histogram of latency buckets, or None when it is empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = math.ceil(q * total), 0
    for bucket in sorted(histogram, key=int):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_ms(int(bucket))
    return bucket_ms(int(max(histogram, key=int)))  # pragma: no cover - the loop always reaches rank


def group_row(counts: Mapping[str, Any]) -> dict[str, Any]:
    """A group's figures in a report: its counts and accept → done p50/p95 (succeeded images)."""
    row: dict[str, Any] = {name: int(counts.get(name, 0)) for name in COUNTS}
    lat = counts.get("lat") or {}
    row["p50_ms"], row["p95_ms"] = percentile(lat, 0.5), percentile(lat, 0.95)
    return row


def groups(merged: Mapping[str, Any], group_by: Dimension | None) -> dict[str, dict[str, Any]]:
    """The rows of one period (or of the whole range): one per group value, or `all`."""
    if group_by is None:
        return {"all": group_row(merged.get("all") or {})} if merged.get("all") else {}
    return {name: group_row(counts) for name, counts in sorted((merged.get(group_by) or {}).items())}


def failures(merged: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Failed images by error code, over every period given."""
    total: dict[str, Any] = {}
    for doc in merged:
        merge(total, doc.get("codes") or {})
    return dict(sorted(total.items()))


def counts_of(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A rollup's counts alone (its maps of integers, without its tenant, period and expiry)."""
    return {k: v for k, v in doc.items() if k in ("all", "codes", *DIMENSIONS)}


def groups_of(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every group of a rollup with its counts: `all`, then each dimension's values."""
    found: list[tuple[str, Mapping[str, Any]]] = [("all", doc.get("all") or {})] if doc.get("all") else []
    for dimension in DIMENSIONS:
        found += [
            (f"{dimension}:{name}", counts) for name, counts in sorted((doc.get(dimension) or {}).items())
        ]
    return found
