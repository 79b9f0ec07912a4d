"""The offline model's JSON answers (the quality pipeline's analyze and verify calls), through
lote's own client and the real google-genai SDK: schema-conforming, deterministic, with knobs."""

from __future__ import annotations

import io
import time

import pytest
import requests
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from lote.clients.model import ModelClient, ModelTransient, generate_json
from lote.quality.schemas import Analysis, verdict_model
from lote.settings import Settings
from lote_local.stack import Stack

TEXT_MODEL = "gemini-2.5-flash"
RUBRIC = ("architecture_unchanged", "perspective_unchanged", "no_artifacts")


@pytest.fixture(scope="module")
def model(stack: Stack) -> ModelClient:
    """lote's model client on the stack's offline server."""
    return ModelClient(Settings(_env_file=stack.config.state_dir / "local.env"))


def photo(color: tuple[int, int, int], knobs: str = "") -> tuple[bytes, str]:
    """A PNG; `knobs` go in its `lote-knobs` text chunk (how a fixed preset prompt gets them)."""
    info = PngInfo()
    if knobs:
        info.add_text("lote-knobs", knobs)
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, format="PNG", pnginfo=info)
    return out.getvalue(), "image/png"


def stats(stack: Stack) -> dict[str, int]:
    """The offline model's counters."""
    return dict(requests.get(stack.url(stack.config.model_port) + "/stats", timeout=5).json())


def test_an_analysis_fits_its_schema_and_depends_only_on_the_photo(model: ModelClient):
    first = generate_json(model, TEXT_MODEL, "Describe this room.", [photo((200, 190, 180))], Analysis)
    again = generate_json(model, TEXT_MODEL, "Describe it again.", [photo((200, 190, 180))], Analysis)
    other = generate_json(model, TEXT_MODEL, "Describe this room.", [photo((20, 90, 180))], Analysis)
    assert isinstance(first.value, Analysis) and first.value == again.value
    assert first.value.is_interior and first.value.is_empty and first.value.fixed_elements
    assert other.value != first.value  # another photo, another room
    assert first.usage["prompt_tokens"] > 0 and first.usage["output_tokens"] > 0


def test_a_photo_can_say_it_is_no_interior_or_already_furnished(model: ModelClient):
    outside = generate_json(
        model, TEXT_MODEL, "Describe.", [photo((1, 2, 3), "analyze=unsuitable")], Analysis
    )
    furnished = generate_json(
        model, TEXT_MODEL, "Describe.", [photo((1, 2, 3), "analyze=furnished")], Analysis
    )
    assert not outside.value.is_interior and outside.value.is_empty
    assert furnished.value.is_interior and not furnished.value.is_empty


def test_a_verdict_answers_every_check_of_the_rubric_and_can_fail_n_times(model: ModelClient, stack: Stack):
    verdict = verdict_model(RUBRIC)
    images = [photo((200, 190, 180)), photo((90, 90, 90))]
    passed = generate_json(model, TEXT_MODEL, "Compare.", images, verdict).value
    assert [c.name for c in passed.checks] == list(RUBRIC)  # type: ignore[attr-defined]
    assert all(c.passed for c in passed.checks) and passed.score >= 0.9  # type: ignore[attr-defined]
    run = time.time_ns()
    prompt = f"Compare. [[verify=fail times=1 run={run}]]"
    failed = generate_json(model, TEXT_MODEL, prompt, images, verdict).value
    assert not any(c.passed for c in failed.checks) and failed.score < 0.5  # type: ignore[attr-defined]
    assert all(c.finding for c in failed.checks)  # type: ignore[attr-defined]
    # The regenerated image is another request; the count is per marker set, so it passes.
    second = generate_json(model, TEXT_MODEL, prompt, [images[0], photo((80, 80, 80))], verdict).value
    assert all(c.passed for c in second.checks)  # type: ignore[attr-defined]


def test_garbage_json_is_a_transient_failure_and_counted(model: ModelClient, stack: Stack):
    before = stats(stack)
    prompt = f"Compare. [[verify=malformed times=1 run={time.time_ns()}]]"
    images = [photo((10, 10, 10))]
    with pytest.raises(ModelTransient) as refused:
        generate_json(model, TEXT_MODEL, prompt, images, verdict_model(RUBRIC))
    assert refused.value.code == "model_bad_response"
    assert generate_json(model, TEXT_MODEL, prompt, images, verdict_model(RUBRIC)).value
    after = stats(stack)
    assert after["text:verify"] - before.get("text:verify", 0) == 2
    assert after["text:verify:malformed"] - before.get("text:verify:malformed", 0) == 1


def test_a_verifier_timeout_is_a_transient_failure(model: ModelClient):
    prompt = f"Compare. [[verify=timeout hang=5 times=1 run={time.time_ns()}]]"
    with pytest.raises(ModelTransient) as slow:
        generate_json(model, TEXT_MODEL, prompt, [photo((5, 5, 5))], verdict_model(RUBRIC))
    assert slow.value.code == "model_timeout"
