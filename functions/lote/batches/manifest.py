"""Batch items: validation of every item up front, and the normalized manifest the fan-out reads.

The manifest is one object per batch in the manifest bucket; each line is a JSON array of up to
CHUNK_SIZE job specs, and the batch document keeps each line's byte range, so a fan-out task reads
only its own chunk.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from lote.batches.schemas import CHUNK_SIZE, BatchDefaults, BatchItem
from lote.billing import pricing
from lote.errors import InvalidRequest, LoteError
from lote.jobs.service import check_inputs
from lote.quality import plan as quality_plan
from lote.quality import presets
from lote.validation import field_errors

MAX_REPORTED = 100
_ITEMS = TypeAdapter(list[BatchItem])


class BatchInvalid(InvalidRequest):
    """Some items are invalid; details list the first 100 with index, reference and field."""


def _merge(defaults: dict[str, Any], item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    merged = {**defaults, **item}
    for key in ("params", "metadata"):
        if key in defaults or key in item:
            merged[key] = {**defaults.get(key, {}), **(item.get(key) or {})}
    # An item's own prompt replaces a default preset (and its params), and the other way round.
    if "prompt" in item and "preset" not in item:
        merged.pop("preset", None)
        if "params" not in item:
            merged.pop("params", None)
    if "preset" in item and "prompt" not in item:
        merged.pop("prompt", None)
    return merged


def _validated(merged: list[Any]) -> tuple[list[BatchItem | None], list[dict[str, Any]]]:
    """Items (None where invalid) and their schema errors; the fast path validates the list at once."""
    try:
        return list(_ITEMS.validate_python(merged)), []
    except ValidationError:
        pass
    items: list[BatchItem | None] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(merged):
        try:
            items.append(BatchItem.model_validate(raw))
        except ValidationError as exc:
            items.append(None)
            reference = raw.get("reference") if isinstance(raw, dict) else None
            errors.extend({"index": index, "reference": reference, **e} for e in field_errors(exc))
    return items, errors


def validate(
    raw_items: list[Any], defaults: BatchDefaults, tenant_id: str, input_bucket: str, default_model: str
) -> list[dict[str, Any]]:
    """Every item merged with the defaults and checked; 400 listing invalid items, or the job specs."""
    base = defaults.model_dump(exclude_none=True, exclude_defaults=True)
    items, errors = _validated([_merge(base, item) for item in raw_items] if base else raw_items)
    specs: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item is None:
            continue
        try:
            if item.webhook_url is not None:
                raise InvalidRequest("set webhook_url on the batch, not on items", {"field": "webhook_url"})
            if item.reference in seen:
                raise InvalidRequest(f"reference repeats item {seen[item.reference]}", {"field": "reference"})
            seen[item.reference] = index
            prompt = item.prompt or ""
            if item.preset is not None:
                prompt = presets.resolve(item.preset, item.params, len(item.images))
            if item.images:
                check_inputs(None, tenant_id, input_bucket, item.images)
            plan = quality_plan.plan_for(
                item.preset, item.verify, item.max_regenerations, item.require_quality_pass
            )
        except LoteError as exc:
            field = exc.details.get("field", "") if isinstance(exc.details, dict) else ""
            errors.append(
                {"index": index, "reference": item.reference, "field": field, "message": exc.message}
            )
            continue
        specs.append({
            "reference": item.reference, "prompt": prompt, "preset": item.preset, "params": item.params,
            "inputs": item.images, "model": item.model, "aspect_ratio": item.aspect_ratio,
            "output_format": item.output_format, "metadata": item.metadata,
            "price": pricing.price(item.model or default_model, item.preset, plan.steps),
        })  # fmt: skip
        asked = quality_plan.requested(item.verify, item.max_regenerations, item.require_quality_pass)
        if asked is not None:  # only when asked: 2,000 items share a manifest line budget
            specs[-1]["quality_request"] = asked
        if not item.reuse:
            specs[-1]["reuse"] = False
    if errors:
        errors.sort(key=lambda e: e["index"])  # report in input order, whatever check found them
        invalid = len({e["index"] for e in errors})
        raise BatchInvalid(
            f"{invalid} of {len(raw_items)} items are invalid; nothing was accepted",
            {
                "invalid_items": invalid,
                "errors": errors[:MAX_REPORTED],
                "truncated": len(errors) > MAX_REPORTED,
            },
        )
    return specs


def encode(specs: list[dict[str, Any]]) -> tuple[bytes, list[list[int]]]:
    """The manifest bytes and each chunk's [start byte, end byte, first index]."""
    parts: list[bytes] = []
    chunks: list[list[int]] = []
    offset = 0
    for first in range(0, len(specs), CHUNK_SIZE):
        line = pydantic_core.to_json(specs[first : first + CHUNK_SIZE]) + b"\n"
        chunks.append([offset, offset + len(line), first])
        parts.append(line)
        offset += len(line)
    return b"".join(parts), chunks


def decode_chunk(data: bytes) -> list[dict[str, Any]]:
    """The job specs of one manifest line."""
    specs: list[dict[str, Any]] = json.loads(data)
    return specs


def parse_jsonl(data: bytes, limit: int) -> list[Any]:
    """Items of a JSONL manifest; 400 naming the line of anything that is not a JSON object."""
    items: list[Any] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        if len(items) >= limit:
            raise InvalidRequest(f"the manifest has more than {limit} items", {"field": "items_url"})
        try:
            items.append(json.loads(line))
        except ValueError as exc:
            raise InvalidRequest(
                f"manifest line {number} is not JSON: {exc}", {"field": "items_url", "line": number}
            ) from None
    if not items:
        raise InvalidRequest("the manifest has no items", {"field": "items_url"})
    return items
