"""The pipeline's rules beyond its plan: `auto` parameters filled from the analysis, the price of a
request's steps, and the step budget inside a task's dispatch deadline."""

from __future__ import annotations

import pytest

from lote.billing import pricing
from lote.clients.model import ModelPermanent
from lote.errors import InvalidRequest
from lote.jobs.pipeline import STEP_SLACK_S, Attempt, keeps_every_image
from lote.quality import presets
from lote.quality.plan import plan_for
from lote.quality.prompts import fill_auto

IMAGE_MODEL = "gemini-2.5-flash-image"


def test_an_auto_parameter_waits_for_the_analysis_and_only_where_the_preset_analyzes():
    prompt = presets.resolve("virtual-staging", {"style": "boho"}, 1)  # room_type is auto by default
    assert "{room_type}" in prompt and "boho" in prompt
    assert "{room_type}" in presets.resolve("virtual-staging", {"room_type": "auto"}, 1)
    with pytest.raises(InvalidRequest) as caught:  # declutter does not analyze: nothing could fill it
        presets.resolve("declutter", {"room_type": "auto"}, 1, "items.2.")
    assert caught.value.details["field"] == "items.2.params.room_type"
    for name, spec in presets.catalogue().items():
        if presets.auto_params(name):
            assert "analyze" in spec["steps"], name


def test_the_analysis_fills_an_auto_parameter_or_refuses_a_photo_none_of_its_values_fit():
    job = {"preset": "virtual-staging", "prompt": presets.resolve("virtual-staging", {}, 1)}
    filled = fill_auto(job, {"room_type": "kitchen"})
    assert "empty kitchen" in filled and "{" not in filled
    with pytest.raises(ModelPermanent) as caught:
        fill_auto(job, {"room_type": "garage"})
    assert caught.value.code == "input_unsuitable" and "params.room_type" in caught.value.message
    asked = {
        "preset": "virtual-staging",
        "prompt": presets.resolve("virtual-staging", {"room_type": "office"}, 1),
    }
    assert fill_auto(asked, {"room_type": "garage"}) == asked["prompt"]  # asked, not auto: kept
    shown = presets.filled("virtual-staging", {"style": "boho"}, None)
    assert shown == {"style": "boho", "room_type": "auto"}
    assert (
        presets.filled("virtual-staging", {"style": "boho"}, {"room_type": "bedroom"})["room_type"]
        == "bedroom"
    )


def test_a_price_sums_the_steps_and_rounds_half_up_to_whole_credits():
    def price(preset: str | None, verify: bool | None = None, model: str = IMAGE_MODEL) -> int:
        return pricing.price(model, preset, plan_for(preset, verify, None, False).steps)

    assert plan_for("virtual-staging", None, None, False).steps == ("analyze", "generate", "verify")
    assert price("virtual-staging") == 2  # 1000 + 250 + 250 thousandths: 1.5 rounds up
    assert price("virtual-staging", verify=False) == 1  # 1.25
    assert price("declutter") == 1 and price(None) == 1 and price(None, verify=True) == 1
    assert price(None, verify=True, model="gemini-3-pro-image-preview") == 4
    assert pricing.step_prices(IMAGE_MODEL, "declutter", ("generate", "verify")) == {
        "generate": 1000,
        "verify": 250,
    }


def test_a_step_starts_only_when_its_model_timeout_fits_in_what_is_left_of_the_lease():
    attempt = Attempt(number=1, began=100.0, lease_s=300.0, step_s=120.0)
    assert attempt.has_room(now=100.0)
    assert attempt.has_room(now=100.0 + 300 - 120 - STEP_SLACK_S)
    assert not attempt.has_room(now=100.0 + 300 - 120 - STEP_SLACK_S + 0.1)


def test_the_last_step_is_left_to_the_finish_only_when_the_finish_deletes_nothing():
    verified = plan_for(None, True, None, False)
    required = plan_for(None, True, None, True)
    good = {"checks": [{"name": "matches_prompt", "passed": True}], "score": 0.9}
    bad = {"checks": [{"name": "matches_prompt", "passed": False}], "score": 0.2}
    one = {"images": [{"object": "a.g0.png"}]}
    assert keeps_every_image(verified, {**one, "verdicts": [good]})
    assert keeps_every_image(verified, {**one, "verdicts": [bad]})  # delivered marked, not deleted
    assert not keeps_every_image(required, {**one, "verdicts": [bad]})  # refused: deleted first
    assert not keeps_every_image(verified, {"images": [{}, {}], "verdicts": [bad, good]})  # a loser to delete
    assert keeps_every_image(plan_for(None, None, None, False), {**one, "verdicts": []})
