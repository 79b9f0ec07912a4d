"""Which steps an image goes through and what is left of them: pure rules over a request's preset
and the checkpoints on its job (docs/decisions/2026-11-24-quality-pipeline.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lote.errors import InvalidRequest
from lote.quality import presets

# A plain prompt that asks for verification: whether the image is what was asked, and clean.
PROMPT_RUBRIC: dict[str, Any] = {
    "checks": ["matches_prompt", "no_artifacts_or_text"],
    "threshold": 0.7,
    "max_regenerations": 1,
}


class Step(StrEnum):
    """One step of an image's pipeline (FINISH: nothing left to call)."""

    ANALYZE = "analyze"
    GENERATE = "generate"
    VERIFY = "verify"
    FINISH = "finish"


@dataclass(frozen=True)
class Rubric:
    """What verification checks, and the score an image must reach."""

    checks: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class Plan:
    """An image's steps as its request and preset decide them."""

    analyze: bool
    rubric: Rubric | None  # None: not verified
    max_regenerations: int
    require_pass: bool
    requires_empty: bool = False

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps an image goes through once (what its price is made of)."""
        first = (Step.ANALYZE.value,) if self.analyze else ()
        last = (Step.VERIFY.value,) if self.rubric is not None else ()
        return (*first, Step.GENERATE.value, *last)


def plan_for(
    preset: str | None,
    verify: bool | None,
    max_regenerations: int | None,
    require_pass: bool,
    field: str = "",
) -> Plan:
    """The plan of a request: its preset's steps, a prompt's only when it asks for `verify`;
    `verify: false` skips verification; `max_regenerations` may lower the default, not raise it."""
    spec: dict[str, Any] = presets.catalogue()[preset] if preset else {"steps": ["generate"]}
    steps = list(spec.get("steps") or ["generate"])
    verified = verify if verify is not None else "verify" in steps
    rules = spec.get("verify") or PROMPT_RUBRIC
    default = int(rules["max_regenerations"]) if verified else 0
    if max_regenerations is not None and verified and max_regenerations > default:
        raise InvalidRequest(
            f"max_regenerations may lower the default of {default}, not raise it",
            {"field": f"{field}max_regenerations", "maximum": default},
        )
    if require_pass and not verified:
        raise InvalidRequest(
            "require_quality_pass needs verification (a preset that verifies, or verify: true)",
            {"field": f"{field}require_quality_pass"},
        )
    rubric = Rubric(tuple(rules["checks"]), float(rules["threshold"])) if verified else None
    return Plan(
        analyze="analyze" in steps,
        rubric=rubric,
        max_regenerations=default if max_regenerations is None else max_regenerations,
        require_pass=require_pass,
        requires_empty=bool((spec.get("analyze") or {}).get("requires_empty")),
    )


def passes(rubric: Rubric, verdict: dict[str, Any]) -> bool:
    """A verdict passes when every check passed and the score reaches the threshold."""
    checks = verdict.get("checks") or []
    return (
        bool(checks) and all(c.get("passed") for c in checks) and float(verdict["score"]) >= rubric.threshold
    )


def next_step(plan: Plan, pipeline: dict[str, Any]) -> Step:
    """What is left, from the checkpoints recorded so far (`analysis`, `images`, `verdicts`)."""
    if plan.analyze and pipeline.get("analysis") is None:
        return Step.ANALYZE
    images, verdicts = list(pipeline.get("images") or []), list(pipeline.get("verdicts") or [])
    if not images:
        return Step.GENERATE
    if plan.rubric is None:
        return Step.FINISH
    if len(verdicts) < len(images):
        return Step.VERIFY
    if passes(plan.rubric, verdicts[-1]) or len(images) > plan.max_regenerations:
        return Step.FINISH
    return Step.GENERATE


def delivered(plan: Plan, pipeline: dict[str, Any]) -> int:
    """The index of the image to deliver once finished: the last one that passed, else the best
    score (the first of equals), else the last generated."""
    images, verdicts = list(pipeline.get("images") or []), list(pipeline.get("verdicts") or [])
    if plan.rubric is None or not verdicts:
        return len(images) - 1
    rubric = plan.rubric
    passing = [i for i, v in enumerate(verdicts) if passes(rubric, v)]
    if passing:
        return passing[-1]
    return max(range(len(verdicts)), key=lambda i: (float(verdicts[i]["score"]), -i))


def requested(
    verify: bool | None, max_regenerations: int | None, require_pass: bool | None
) -> dict[str, Any] | None:
    """What a request asked of verification, as its job records it (None: the preset's way)."""
    asked = {
        "verify": verify,
        "max_regenerations": max_regenerations,
        "require_quality_pass": require_pass or None,
    }
    kept = {k: v for k, v in asked.items() if v is not None}
    return kept or None


def plan_of(job: Mapping[str, Any]) -> Plan:
    """A job's plan, from its preset and what it asked (`quality_request`)."""
    asked = job.get("quality_request") or {}
    return plan_for(job.get("preset"), asked.get("verify"), asked.get("max_regenerations"),
                    bool(asked.get("require_quality_pass")))  # fmt: skip


def schema_rules(preset: str | None) -> list[dict[str, Any]]:
    """plan_for's cross-field rules as JSON Schema (the OpenAPI document states them, so a client,
    or the fuzzer, knows a valid request from the contract alone)."""
    spec: dict[str, Any] = presets.catalogue()[preset] if preset else {"steps": ["generate"]}
    by_default = "verify" in (spec.get("steps") or [])
    limit = int((spec.get("verify") or PROMPT_RUBRIC)["max_regenerations"])
    capped = {"properties": {"max_regenerations": {"anyOf": [{"type": "null"}, {"maximum": limit}]}}}
    asked = {"required": ["require_quality_pass"], "properties": {"require_quality_pass": {"const": True}}}
    if by_default:  # verified unless `verify: false`
        opted_out = {"required": ["verify"], "properties": {"verify": {"const": False}}}
        return [{"if": opted_out, "else": capped},
                {"if": asked, "then": {"properties": {"verify": {"not": {"const": False}}}}}]  # fmt: skip
    opted_in = {"required": ["verify"], "properties": {"verify": {"const": True}}}
    return [{"if": opted_in, "then": capped}, {"if": asked, "then": opted_in}]
