"""Named prompt templates (presets.json) and how a request's preset becomes a prompt."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from lote.errors import InvalidRequest

PRESETS_FILE = Path(__file__).with_name("presets.json")
# A parameter whose rule names an analysis field (`"auto": "room_type"`) may be `auto`: its value is
# left as a `{name}` placeholder in the job's prompt and filled from what the analysis saw.
AUTO = "auto"


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
        if value == AUTO and rule.get(AUTO):
            values[name] = "{" + name + "}"  # filled by the pipeline (quality/prompts.py fill_auto)
            continue
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


def auto_params(preset: str | None) -> dict[str, tuple[str, list[str]]]:
    """The preset's parameters that may be `auto`: name → (the analysis field, the allowed values)."""
    spec = catalogue().get(preset or "") or {}
    return {
        name: (str(rule[AUTO]), list(rule.get("choices") or []))
        for name, rule in (spec.get("params") or {}).items()
        if rule.get(AUTO)
    }


def filled(preset: str | None, params: dict[str, str], analysis: dict[str, Any] | None) -> dict[str, str]:
    """The request's params as they stand: an `auto` one (asked, or by default) shows `auto` until
    the analysis has filled it, then what the analysis saw."""
    shown = dict(params)
    for name, (field, _allowed) in auto_params(preset).items():
        rule = catalogue()[preset or ""]["params"][name]
        if shown.get(name, rule.get("default")) == AUTO:
            shown[name] = str(analysis[field]) if analysis and analysis.get(field) else AUTO
    return shown


def fill(prompt: str, preset: str | None, analysis: dict[str, Any] | None) -> str:
    """The prompt with its `auto` placeholders replaced by what the analysis saw (as is until then)."""
    for name, (field, _allowed) in auto_params(preset).items():
        if analysis and analysis.get(field):
            prompt = prompt.replace("{" + name + "}", str(analysis[field]))
    return prompt


def names() -> tuple[str, ...]:
    """Every preset's name."""
    return tuple(sorted(catalogue()))
