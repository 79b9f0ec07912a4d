"""One attempt's run through an image's pipeline: analyze → generate → verify, regenerating after a
failed verdict. Every finished step is recorded on the job before the next starts, so a retried
task resumes at the step that did not finish and no model call is paid twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lote.clients.model import ModelPermanent, ModelTransient, generate_image, generate_json
from lote.jobs import outputs, store
from lote.quality.plan import Plan, Step, delivered, next_step, passes
from lote.quality.schemas import Analysis, verdict_model
from lote.services import Services


class Stopped(Exception):
    """The attempt lost the job (`stale`) or a cancel was requested (`canceled`) between steps."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Result:
    """What the pipeline delivers: the output, its quality (None when not verified), each step's
    usage, and the image model's milliseconds."""

    output: dict[str, Any]
    quality: dict[str, Any] | None
    usage: dict[str, Any]
    model_ms: int
    created: bool = True
    leftovers: list[str] = field(default_factory=list)


def uses_pipeline(plan: Plan) -> bool:
    """Whether the plan has steps besides one generation (analysis or verification)."""
    return plan.analyze or plan.rubric is not None


def run(
    services: Services,
    job_id: str,
    job: dict[str, Any],
    plan: Plan,
    attempt: int,
    inputs: list[tuple[bytes, str]],
) -> Result:
    """The steps left for this job, recorded one by one; raises ModelFailure as one call would
    (ModelPermanent `input_unsuitable` / `quality_rejected` end the job, refunded), or Stopped."""
    state: dict[str, Any] = dict(job.get("pipeline") or {})
    state.setdefault("images", [])
    state.setdefault("verdicts", [])
    usage: dict[str, Any] = dict(state.get("usage") or {})
    fresh: dict[int, bytes] = {}  # images generated in this attempt: verified without a read
    model_ms = int(state.get("model_ms") or 0)
    while (step := next_step(plan, state)) is not Step.FINISH:
        if step is Step.ANALYZE:
            answer = generate_json(
                services.model, services.settings.text_model, analyze_prompt(job), inputs, Analysis
            )
            analysis = answer.value.model_dump()
            _add(usage, "analyze", services.settings.text_model, answer.elapsed_ms, answer.usage)
            _refuse_unsuitable(plan, analysis)
            state["analysis"] = analysis
        elif step is Step.GENERATE:
            index = len(state["images"])
            prompt = generation_prompt(job["prompt"], state.get("analysis"), state["verdicts"])
            image = generate_image(services.model, job["model"], prompt, inputs, job.get("aspect_ratio"))
            candidate = index if plan.rubric is not None else None
            output, _ = outputs.store(services, job_id, job, image.data, candidate)
            fresh[index] = image.data
            model_ms += image.elapsed_ms
            _add(usage, "generate", job["model"], image.elapsed_ms, image.usage)
            state["images"].append(output)
        else:
            assert plan.rubric is not None  # next_step verifies only with a rubric
            output = state["images"][-1]
            data = fresh.get(len(state["images"]) - 1) or _read(services, output)
            schema = verdict_model(plan.rubric.checks)
            shown = [*inputs, (data, output["mime_type"])]
            ask = verify_prompt(job, plan.rubric.checks)
            verdict = generate_json(services.model, services.settings.text_model, ask, shown, schema)
            _add(usage, "verify", services.settings.text_model, verdict.elapsed_ms, verdict.usage)
            state["verdicts"].append(verdict.value.model_dump())
        checkpoint = {"pipeline": {**state, "usage": usage, "model_ms": model_ms}}
        recorded = store.checkpoint(services.firestore.db, job_id, attempt, checkpoint)
        if recorded != "ok":
            if recorded == "canceled":  # nothing of this job will be delivered
                for image in state["images"]:
                    services.storage.delete(image["bucket"], image["object"])
            raise Stopped(recorded)
    return _finish(services, plan, state, usage, model_ms)


def _finish(
    services: Services, plan: Plan, state: dict[str, Any], usage: dict[str, Any], model_ms: int
) -> Result:
    """The image to deliver and its quality; the other images deleted first (a retry of this
    finish finds the delivered one still there); a never-passing image refused if asked."""
    images, verdicts = state["images"], state["verdicts"]
    chosen = delivered(plan, state)
    quality = None
    if plan.rubric is not None and verdicts:
        verdict = verdicts[chosen]
        quality = {
            "passed": passes(plan.rubric, verdict),
            "score": float(verdict["score"]),
            "checks": verdict["checks"],
            "regenerations": len(images) - 1,
            "verifier_model": services.settings.text_model,
        }
    keep = None if quality is not None and not quality["passed"] and plan.require_pass else chosen
    for index, image in enumerate(images):
        if index != keep:
            services.storage.delete(image["bucket"], image["object"])
    if keep is None:
        best = quality["score"] if quality else 0.0
        raise ModelPermanent(
            "quality_rejected", f"no image passed verification in {len(images)} tries (best score {best})"
        )
    return Result(images[chosen], quality, usage, model_ms)


def _refuse_unsuitable(plan: Plan, analysis: dict[str, Any]) -> None:
    if not analysis["is_interior"]:
        raise ModelPermanent("input_unsuitable", "the photo is not of a room's interior")
    if plan.requires_empty and not analysis["is_empty"]:
        raise ModelPermanent(
            "input_unsuitable", "the room is already furnished; virtual staging needs an empty room"
        )


def _read(services: Services, output: dict[str, Any]) -> bytes:
    data = services.storage.read(output["bucket"], output["object"], outputs.MAX_OUTPUT_BYTES)
    if data is None:  # deleted under us: generate it again rather than verify nothing
        raise ModelTransient("output_missing", f"{output['object']} is gone before its verification")
    return data


def _add(usage: dict[str, Any], step: str, model: str, elapsed_ms: int, tokens: dict[str, int]) -> None:
    """Sum a call into its step's usage (a regenerated image adds to `generate`)."""
    entry = usage.setdefault(
        step, {"model": model, "calls": 0, "ms": 0, "prompt_tokens": 0, "output_tokens": 0}
    )
    entry["calls"] += 1
    entry["ms"] += elapsed_ms
    entry["prompt_tokens"] += int(tokens.get("prompt_tokens", 0))
    entry["output_tokens"] += int(tokens.get("output_tokens", 0))


def analyze_prompt(job: dict[str, Any]) -> str:
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


def verify_prompt(job: dict[str, Any], checks: tuple[str, ...]) -> str:
    """What the verifier is asked: the inputs come first, the generated image last."""
    return (
        "The last image was generated from the images before it for this request: "
        f"{job['prompt']}\nJudge each check strictly and say what is wrong and where: "
        f"{', '.join(checks)}. Then score the image from 0 (unusable) to 1."
    )
