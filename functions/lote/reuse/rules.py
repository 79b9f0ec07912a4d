"""When an image already made may be delivered again instead of calling the model (pure).

A request's fingerprint names everything that decides the image: the tenant (tenants never share
results), the model, the prompt as sent (a preset's filled in), the preset's definition and params,
each input's content hash in order, the aspect ratio, the output format and what verification was
asked. Two jobs with one fingerprint ask for the same image; the second is delivered the first's,
priced by pricing.json's `reuse_percent`. A job resumed mid-pipeline has paid for steps already and
is not looked up."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lote import ids
from lote.quality import presets

# A record stays usable this long before its source output's deletion (the bucket's age rule).
OUTPUT_MARGIN = dt.timedelta(days=1)


def wanted(job: Mapping[str, Any]) -> bool:
    """Whether the job may be delivered a reused image: asked for (the default), and not resumed
    after a step it paid for."""
    return job.get("reuse", True) is not False and not job.get("pipeline")


def fingerprint(job: Mapping[str, Any], input_hashes: list[str]) -> str:
    """The request's fingerprint (sha256 hex of its canonical description)."""
    preset = job.get("preset")
    described = {
        "tenant": job["tenant_id"],
        "model": job["model"],
        "prompt": job["prompt"],
        "preset": preset,
        "preset_definition": presets.catalogue().get(preset) if preset else None,
        "params": job.get("params") or {},
        "inputs": input_hashes,
        "aspect_ratio": job.get("aspect_ratio"),
        "output_format": job.get("output_format"),
        "quality": job.get("quality_request"),
    }
    return ids.sha256_hex(json.dumps(described, sort_keys=True, separators=(",", ":"), default=str))


def record_id(tenant_id: str, fp: str) -> str:
    """The record's document id: the tenant first, so no lookup can reach another tenant's."""
    return f"{tenant_id}:{fp}"


def usable_until(made_at: dt.datetime, ttl_s: float, output_retention_days: int) -> dt.datetime:
    """How long an image made at `made_at` may be reused: `LOTE_REUSE_TTL_S`, and never past a day
    before the output bucket deletes it."""
    kept = dt.timedelta(days=output_retention_days) - OUTPUT_MARGIN
    return made_at + min(dt.timedelta(seconds=ttl_s), kept)


class Kind(StrEnum):
    """What a lookup found."""

    HIT = "hit"  # an image to deliver again
    WAIT = "wait"  # another job is making it now
    GO = "go"  # this job makes it (it now owns the record)


@dataclass(frozen=True)
class Found:
    """A lookup's answer; for a hit the source job, its output and quality."""

    kind: Kind
    source: str | None = None
    output: dict[str, Any] | None = None  # a job's `output`
    quality: dict[str, Any] | None = None
    owner: str | None = None  # the job making it, for a wait


def judge(record: dict[str, Any] | None, job_id: str, now: dt.datetime) -> Found:
    """What a job finds in its fingerprint's record."""
    record = record or {}
    source, until = record.get("source"), record.get("until")
    if source and source != job_id and record.get("output") and until is not None and until > now:
        return Found(Kind.HIT, source, record["output"], record.get("quality"))
    owner, owner_until = record.get("owner"), record.get("owner_until")
    if owner and owner != job_id and owner_until is not None and owner_until > now:
        return Found(Kind.WAIT, owner=owner)
    return Found(Kind.GO)


def discount(price: int, reuse_percent: int) -> int:
    """Credits given back for a reused image: its price beyond `reuse_percent` of it (rounded half
    up; 0 % makes a reused image free)."""
    kept = (price * reuse_percent * 2 + 100) // 200
    return max(0, price - kept)
