"""What the fuzzer cannot invent: values that must exist outside the request.

A JSON Schema can say that an input is a gs:// URL or a data: URI, not that the object exists or
that the bytes decode to a picture; it cannot say that a webhook host resolves, that batch item
references are unique, or which fields a batch's `defaults` supply. For schema-valid (positive)
cases only, these hooks put real values in those places; negative cases are sent as generated.
"""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from lote.errors import InvalidRequest
from lote.quality import plan as quality_plan
from lote.quality import presets


def _png() -> str:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 120, 200)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


@dataclass
class Fuzz:
    """The run's real values, and what it saw (for the summary)."""

    api_key: str = ""
    upload: str = ""  # a gs:// image of the fuzz tenant
    manifest: str = ""  # a gs:// JSONL manifest of the fuzz tenant
    receiver: str = ""  # a webhook URL that answers 200
    data_uri: str = field(default_factory=_png)
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


STATE = Fuzz()


def _images(images: Any) -> Any:
    if not isinstance(images, list):
        return images
    real = []
    for image in images:
        if isinstance(image, str) and image.startswith("data:"):
            image = STATE.data_uri
        elif isinstance(image, str) and image.startswith("gs://"):
            image = STATE.upload
        real.append(image)
    return real


def _generation(body: dict[str, Any]) -> None:
    if "images" in body:
        body["images"] = _images(body["images"])
    if isinstance(body.get("webhook_url"), str):
        body["webhook_url"] = STATE.receiver


def _batch(body: dict[str, Any]) -> None:
    if isinstance(body.get("webhook_url"), str):
        body["webhook_url"] = STATE.receiver
    if isinstance(body.get("items_url"), str):
        body["items_url"] = STATE.manifest
    defaults = body.get("defaults") if isinstance(body.get("defaults"), dict) else {}
    if "images" in defaults:
        defaults["images"] = _images(defaults["images"])
    # Which fields the defaults supply is a rule across objects: keep defaults to the fields that
    # cannot conflict with an item's own, and make each item complete on its own.
    for key in (
        "prompt",
        "preset",
        "params",
        "images",
        "verify",
        "max_regenerations",
        "require_quality_pass",
    ):
        defaults.pop(key, None)
    items = body.get("items")
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        item["reference"] = f"{str(item.get('reference', 'r'))[:100]}-{index}"  # unique in the batch
        _generation(item)
        item.pop("webhook_url", None)  # items report to the batch's URL
        if item.get("prompt") is None and item.get("preset") is None:
            item["prompt"] = "a fuzzed picture"
            item.pop("params", None)
        elif item.get("prompt") is not None and item.get("preset") is not None:
            item.pop("preset", None)
            item.pop("params", None)
        elif item.get("preset") is not None:
            # A preset's own parameters and choices (GET /v1/presets): the item schema cannot
            # say them, since the defaults may supply the preset.
            spec = presets.catalogue().get(item["preset"], {"params": {}})
            params = item.get("params") if isinstance(item.get("params"), dict) else {}
            item["params"] = {
                k: v for k, v in params.items() if v in spec["params"].get(k, {}).get("choices", ())
            }
            if not item.get("images"):
                item["images"] = [STATE.data_uri]
        elif item.get("prompt") is not None and item.get("params"):
            item.pop("params", None)
        _quality(item)


def _spend_controls(body: dict[str, Any]) -> None:
    """A receiver that answers, and caps the fuzz tenant never reaches (set: their room is still
    lent and counted on every admission, but no later case is refused for them)."""
    if isinstance(body.get("webhook_url"), str):
        body["webhook_url"] = STATE.receiver
    for cap in ("daily_cap", "monthly_cap"):
        if isinstance(body.get(cap), int):
            body[cap] = 1_000_000_000


def _quality(item: dict[str, Any]) -> None:
    """An item's verification options as its own preset allows them (the item schema cannot say
    which, since the defaults may supply the preset): options its plan refuses are dropped."""
    preset = item.get("preset") if item.get("preset") in presets.catalogue() else None
    regenerations = item.get("max_regenerations")
    try:
        quality_plan.plan_for(preset, item.get("verify") if isinstance(item.get("verify"), bool) else None,
                              int(regenerations) if isinstance(regenerations, (int, float)) else None,
                              item.get("require_quality_pass") is True)  # fmt: skip
    except InvalidRequest:
        item.pop("max_regenerations", None)
        item.pop("require_quality_pass", None)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Real values in the places listed above, for positive cases only, just before sending (some
    cases are built when the tests are collected, before the stack exists); schemathesis checks
    the edited case against the schema again, so it stays a positive case."""
    meta = getattr(case, "_meta", None)
    if meta is None:
        return
    path = case.operation.path
    # The body's own mode: a case made negative elsewhere (an unexpected header) still sends a
    # schema-valid body, which the server must then accept.
    body = meta.components.get(ParameterLocation.BODY)
    if (
        isinstance(case.body, dict)
        and (body.mode if body else meta.generation.mode) == GenerationMode.POSITIVE
    ):
        if path == "/v1/generations":
            _generation(case.body)
        elif path == "/v1/batches":
            _batch(case.body)
        elif path == "/v1/account/spend-controls":
            _spend_controls(case.body)
    query = meta.components.get(ParameterLocation.QUERY)
    if isinstance(case.query, dict) and query and query.mode == GenerationMode.POSITIVE:
        case.query.pop("page_token", None)  # valid tokens come from earlier answers (stateful links)
        if path in ("/v1/account/usage", "/v1/admin/tenants/{tenant_id}/economics"):  # the default range
            case.query.pop("from", None)
            case.query.pop("to", None)


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Count what was sent and answered."""
    STATE.requests += 1
    STATE.statuses[int(response.status_code)] += 1


def manifest_line(index: int) -> bytes:
    """One JSONL item of the fuzz manifest."""
    return json.dumps({"reference": f"m{index}", "prompt": "from a manifest"}).encode() + b"\n"
