"""What each step of the pipeline asks the models: the analysis, the generation (with what the
analysis saw, `auto` parameters filled, and the last verdict's findings) and the verification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lote.clients.model import ModelPermanent
from lote.quality import presets


def fill_auto(job: Mapping[str, Any], analysis: dict[str, Any] | None) -> str:
    """The job's prompt with its `auto` parameters filled from the analysis; `input_unsuitable`
    when what the analysis saw is not one of the parameter's allowed values."""
    prompt = str(job["prompt"])
    for name, (field, allowed) in presets.auto_params(job.get("preset")).items():
        seen = str((analysis or {}).get(field))
        if "{" + name + "}" in prompt and analysis is not None and allowed and seen not in allowed:
            raise ModelPermanent(
                "input_unsuitable",
                f"the photo shows a {seen}; {job.get('preset')} handles {', '.join(allowed)} "
                f"(set params.{name} to say which)",
            )
    return presets.fill(prompt, job.get("preset"), analysis)


def analyze_prompt(job: Mapping[str, Any]) -> str:
    """What the analyzer is asked about the input photo."""
    return (
        "Analyze the input photo before it is edited. Say whether it shows the interior of a room, "
        "whether the room is empty of furniture, its room type, the fixed elements (windows, doors, "
        "built-ins) that must not move, the camera perspective and the lighting. "
        f"The edit that will be asked for: {job['prompt']}"
    )


def generation_prompt(prompt: str, analysis: dict[str, Any] | None, verdicts: list[dict[str, Any]]) -> str:
    """The request's prompt with what the analysis found and what the last verdict faulted."""
    parts = [prompt]
    if analysis:
        fixed = ", ".join(analysis.get("fixed_elements") or []) or "none listed"
        parts.append(
            f"The photo is a {analysis['room_type']}. Keep these exactly where they are: {fixed}. "
            f"Camera: {analysis['perspective']}. Lighting: {analysis['lighting']}."
        )
    if verdicts:
        failed = [c for c in verdicts[-1].get("checks") or [] if not c.get("passed")]
        if failed:
            notes = "; ".join(f"{c['name']}: {c.get('finding') or 'failed'}" for c in failed)
            parts.append(f"A previous image failed these checks, avoid it: {notes}.")
    return "\n".join(parts)


def verify_prompt(job: Mapping[str, Any], checks: tuple[str, ...]) -> str:
    """What the verifier is asked: the inputs come first, the generated image last."""
    return (
        "The last image was generated from the images before it for this request: "
        f"{job['prompt']}\nJudge each check strictly and say what is wrong and where: "
        f"{', '.join(checks)}. Then score the image from 0 (unusable) to 1."
    )
