"""One attempt's run through an image's steps: analyze → generate → verify, regenerating after a
failed verdict, as the job's plan asks (a plain job's plan is one generation). Every finished step
is recorded on the job before the next starts, so a retried task resumes at the step that did not
finish and no model call is paid twice. What the run ends in becomes the attempt's outcome
(jobs/outcome.py): a Result, or one of the exceptions below or a ModelFailure."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lote.clients.model import (
    ModelFailure,
    ModelOperatorTrouble,
    ModelPermanent,
    ModelThrottled,
    ModelTransient,
    generate_image,
    generate_json,
)
from lote.jobs import attempts, outputs, store
from lote.jobs.documents import JobDoc, JobOutput
from lote.quality.plan import Plan, Step, delivered, next_step, passes
from lote.quality.prompts import analyze_prompt, fill_auto, generation_prompt, verify_prompt
from lote.quality.schemas import Analysis, verdict_model
from lote.services import Services


class Stopped(Exception):
    """The attempt lost the job (`stale`) or a cancel was requested (`canceled`) between steps."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutOfTime(Exception):
    """The attempt's lease has no room for another step: its steps so far are recorded, and the job
    goes on in a new task (the worker defers it, this attempt not counted)."""

    def __init__(self, image_calls: int) -> None:
        super().__init__(f"no room for another step after {image_calls} image calls")
        self.image_calls = image_calls


# What a step may need beyond its model call: reading an image back, storing one, the checkpoint.
STEP_SLACK_S = 5.0


@dataclass(frozen=True)
class Attempt:
    """The attempt running the pipeline: its number (the checkpoints' precondition), its clock, and
    whether it is the queue's last (then a failure that ends the job delivers the images made so
    far instead of losing them)."""

    number: int
    began: float  # time.monotonic() at the claim
    lease_s: float  # the task's dispatch deadline: the attempt must answer within it
    step_s: float  # a model call's timeout: the longest a step waits on the model
    last: bool = False  # the queue will not retry the task after this attempt

    def has_room(self, now: float | None = None) -> bool:
        """Whether one more step fits before the lease runs out."""
        elapsed = (time.monotonic() if now is None else now) - self.began
        return elapsed + self.step_s + STEP_SLACK_S <= self.lease_s


@dataclass
class Result:
    """What the pipeline delivers: the output, its quality (None when not verified), each step's
    usage (`{step: {model, calls, ms, tokens…}}`, for a plain job too), the image model's
    milliseconds, and how many image calls this attempt made. `created`: whether this attempt stored
    the delivered object (a cancel that wins at the end deletes it)."""

    output: JobOutput
    quality: dict[str, Any] | None
    usage: dict[str, Any]
    model_ms: int
    created: bool = True
    image_calls: int = 1


def run(
    services: Services,
    job_id: str,
    job: JobDoc,
    plan: Plan,
    attempt: Attempt,
    inputs: list[tuple[bytes, str]],
) -> Result:
    """The steps left for this job, recorded one by one. Raises ModelFailure as one call would
    (ModelPermanent `input_unsuitable` / `quality_rejected` end the job, refunded), Stopped, or
    OutOfTime; a failure that ends the job once an image exists delivers what there is."""
    state: dict[str, Any] = dict(job.get("pipeline") or {})
    state.setdefault("images", [])
    state.setdefault("verdicts", [])
    usage: dict[str, Any] = dict(state.get("usage") or {})
    fresh: dict[int, bytes] = {}  # images generated in this attempt: verified without a read
    made: dict[int, bool] = {}  # whether this attempt created each image's object (a cancel deletes it)
    model_ms = int(state.get("model_ms") or 0)
    steps = 0
    since = None  # the last checkpoint's write: the next one's precondition
    while (step := next_step(plan, state)) is not Step.FINISH:
        if steps and not attempt.has_room():  # the first step always runs: every attempt moves on
            raise OutOfTime(len(fresh))
        steps += 1
        try:
            if step is Step.ANALYZE:
                answer = generate_json(
                    services.model, services.settings.text_model, analyze_prompt(job), inputs, Analysis
                )
                analysis = answer.value.model_dump()
                _add(usage, "analyze", services.settings.text_model, answer.elapsed_ms, answer.usage)
                _refuse_unsuitable(plan, analysis)
                fill_auto(job, analysis)  # refuses a photo no allowed value fits, before an image is paid
                state["analysis"] = analysis
            elif step is Step.GENERATE:
                index = len(state["images"])
                asked = fill_auto(job, state.get("analysis"))
                prompt = generation_prompt(asked, state.get("analysis"), state["verdicts"])
                image = generate_image(services.model, job["model"], prompt, inputs, job.get("aspect_ratio"))
                candidate = index if plan.rubric is not None else None
                output, created = outputs.store(services, job_id, job, image.data, candidate)
                made[index] = created
                fresh[index] = image.data
                model_ms += image.elapsed_ms
                _add(usage, "generate", job["model"], image.elapsed_ms, image.usage)
                state["images"].append(output)
            else:
                state["verdicts"].append(_verify(services, job, plan, state, inputs, fresh, usage))
        except ModelFailure as exc:
            waits = isinstance(exc, (ModelThrottled, ModelOperatorTrouble))  # not the image's fault
            if waits or not state["images"] or not attempts.ends_job(job, exc, attempt.last):
                raise
            return _salvage(services, plan, state, usage, model_ms, exc, made)
        if next_step(plan, state) is Step.FINISH and keeps_every_image(plan, state):
            # The attempt's finish records the last step, in the same write as the result. Not when
            # the finish deletes images first: a crash after the deletes would leave a retry
            # verifying an image that is gone.
            break
        checkpoint = {"pipeline": {**state, "usage": usage, "model_ms": model_ms}}
        recorded, since = store.checkpoint(services.firestore.db, job_id, attempt.number, checkpoint, since)
        if recorded != "ok":
            if recorded == "canceled":  # nothing of this job will be delivered
                for image in state["images"]:
                    services.storage.delete(image["bucket"], image["object"])
            raise Stopped(recorded)
    return _finish(services, plan, state, usage, model_ms, made)


def keeps_every_image(plan: Plan, state: dict[str, Any]) -> bool:
    """Whether finishing deletes nothing: one image, delivered (passed, or kept without a pass)."""
    images, verdicts = state["images"], state["verdicts"]
    if len(images) != 1:
        return False
    if plan.rubric is None or not plan.require_pass or not verdicts:
        return True
    return passes(plan.rubric, verdicts[-1])  # a refused image is deleted before the job fails


def _verify(
    services: Services,
    job: JobDoc,
    plan: Plan,
    state: dict[str, Any],
    inputs: list[tuple[bytes, str]],
    fresh: dict[int, bytes],
    usage: dict[str, Any],
) -> dict[str, Any]:
    """The verifier's verdict on the last image, compared with the inputs."""
    assert plan.rubric is not None  # next_step verifies only with a rubric
    output = state["images"][-1]
    data = fresh.get(len(state["images"]) - 1) or _read(services, output)
    shown = [*inputs, (data, output["mime_type"])]
    ask = verify_prompt(job, plan.rubric.checks)
    model = services.settings.text_model
    verdict = generate_json(services.model, model, ask, shown, verdict_model(plan.rubric.checks))
    _add(usage, "verify", model, verdict.elapsed_ms, verdict.usage)
    return verdict.value.model_dump()


def _salvage(
    services: Services,
    plan: Plan,
    state: dict[str, Any],
    usage: dict[str, Any],
    model_ms: int,
    exc: ModelFailure,
    made: dict[int, bool],
) -> Result:
    """A failure that ends the job once images exist: a regeneration that failed leaves the verified
    ones to choose from; a verifier that never answered leaves the last image unverified, delivered
    with `passed: false`, or refused `verifier_unavailable` (refunded) under require_quality_pass."""
    images, verdicts = state["images"], state["verdicts"]
    if len(verdicts) == len(images):
        return _finish(services, plan, state, usage, model_ms, made)
    if plan.require_pass:
        for image in images:
            services.storage.delete(image["bucket"], image["object"])
        raise ModelPermanent("verifier_unavailable", f"the image could not be verified: {exc.message}")
    for image in images[:-1]:
        services.storage.delete(image["bucket"], image["object"])
    quality = _quality(services, len(images), False, None, [], f"{exc.code}: {exc.message}"[:500])
    return Result(images[-1], quality, usage, model_ms, made.get(len(images) - 1, True), len(made))


def _quality(
    services: Services,
    images: int,
    passed: bool,
    score: float | None,
    checks: list[Any],
    unverified: str = "",
) -> dict[str, Any]:
    """The `quality` a job records (quality/schemas.py Quality)."""
    found = {"passed": passed, "score": score, "checks": checks, "regenerations": images - 1,
             "verifier_model": services.settings.text_model}  # fmt: skip
    if unverified:
        found["unverified"] = unverified
    return found


def _finish(
    services: Services,
    plan: Plan,
    state: dict[str, Any],
    usage: dict[str, Any],
    model_ms: int,
    made: dict[int, bool],
) -> Result:
    """The image to deliver and its quality; the other images deleted first (a retry of this
    finish finds the delivered one still there); a never-passing image refused if asked. `made`:
    whether this attempt stored each image it generated (by index)."""
    images, verdicts = state["images"], state["verdicts"]
    chosen = delivered(plan, state)
    quality = None
    if plan.rubric is not None and verdicts:
        verdict = verdicts[chosen]
        quality = _quality(services, len(images), passes(plan.rubric, verdict), float(verdict["score"]),
                           verdict["checks"])  # fmt: skip
    keep = None if quality is not None and not quality["passed"] and plan.require_pass else chosen
    for index, image in enumerate(images):
        if index != keep:
            services.storage.delete(image["bucket"], image["object"])
    if keep is None:
        best = quality["score"] if quality else 0.0
        raise ModelPermanent(
            "quality_rejected", f"no image passed verification in {len(images)} tries (best score {best})"
        )
    return Result(images[chosen], quality, usage, model_ms, made.get(chosen, True), len(made))


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
        step,
        {"model": model, "calls": 0, "ms": 0, "prompt_tokens": 0, "output_tokens": 0, "thinking_tokens": 0},
    )
    entry["calls"] += 1
    entry["ms"] += elapsed_ms
    for key, count in tokens.items():  # every count the call was billed for (clients/model.usage_of)
        entry[key] = int(entry.get(key, 0)) + int(count)
