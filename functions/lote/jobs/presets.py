"""Named prompt templates (presets.json) and how a request's preset becomes a prompt."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from lote.errors import InvalidRequest

PRESETS_FILE = Path(__file__).with_name("presets.json")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Any]:
    """Every preset, read once."""
    data: dict[str, Any] = json.loads(PRESETS_FILE.read_text())
    return data


def resolve(preset: str, params: dict[str, str], image_count: int, field: str = "") -> str:
    """The prompt for a preset and its params; 400 naming the field for anything unknown."""
    presets = catalogue()
    if preset not in presets:
        raise InvalidRequest(
            f"unknown preset {preset!r}", {"field": f"{field}preset", "allowed": sorted(presets)}
        )
    spec = presets[preset]
    unknown = sorted(set(params) - set(spec["params"]))
    if unknown:
        raise InvalidRequest(
            f"preset {preset!r} has no parameter {unknown[0]!r}",
            {"field": f"{field}params.{unknown[0]}", "allowed": sorted(spec["params"])},
        )
    values = {}
    for name, rule in spec["params"].items():
        value = params.get(name, rule.get("default"))
        if value is None:
            raise InvalidRequest(f"preset {preset!r} needs {name!r}", {"field": f"{field}params.{name}"})
        if "choices" in rule and value not in rule["choices"]:
            raise InvalidRequest(
                f"{name} must be one of the preset's choices",
                {"field": f"{field}params.{name}", "allowed": rule["choices"]},
            )
        values[name] = value
    if image_count < spec.get("min_images", 0):
        raise InvalidRequest(
            f"preset {preset!r} needs at least {spec['min_images']} input image(s)",
            {"field": f"{field}images"},
        )
    return str(spec["template"]).format(**values)


def names() -> tuple[str, ...]:
    """Every preset's name."""
    return tuple(sorted(catalogue()))
