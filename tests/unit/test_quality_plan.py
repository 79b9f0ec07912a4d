"""The quality pipeline's pure rules: which steps a request gets, what is left after each
checkpoint, and which image is delivered."""

from __future__ import annotations

import pytest

from lote.errors import InvalidRequest
from lote.quality import presets
from lote.quality.plan import Step, delivered, next_step, plan_for
from lote.quality.schemas import verdict_model


def _verdict(score: float, passed: bool = True) -> dict[str, object]:
    return {"checks": [{"name": "architecture_unchanged", "passed": passed, "finding": ""}], "score": score}


def test_presets_declare_their_steps_and_a_plain_prompt_only_generates():
    staging = plan_for("virtual-staging", None, None, False)
    assert staging.analyze and staging.requires_empty and staging.rubric is not None
    assert "openings_unchanged" in staging.rubric.checks and staging.max_regenerations == 2
    declutter = plan_for("declutter", None, None, False)
    assert not declutter.analyze and declutter.rubric is not None
    plain = plan_for(None, None, None, False)
    assert (plain.analyze, plain.rubric, plain.max_regenerations) == (False, None, 0)
    asked = plan_for(None, True, None, True)
    assert asked.rubric is not None and asked.rubric.checks == ("matches_prompt", "no_artifacts_or_text")
    assert plan_for("product-shot", False, None, False).rubric is None  # opted out


def test_a_request_may_lower_the_regenerations_not_raise_them_and_names_the_field():
    assert plan_for("declutter", None, 0, False).max_regenerations == 0
    with pytest.raises(InvalidRequest) as raised:
        plan_for("declutter", None, 3, False, "items.4.")
    assert raised.value.details == {"field": "items.4.max_regenerations", "maximum": 2}
    with pytest.raises(InvalidRequest) as unverified:
        plan_for(None, None, None, True)
    assert unverified.value.details == {"field": "require_quality_pass"}


def test_each_checkpoint_moves_the_pipeline_on_and_a_retry_resumes_where_it_stopped():
    plan = plan_for("virtual-staging", None, None, False)
    pipeline: dict[str, object] = {}
    assert next_step(plan, pipeline) is Step.ANALYZE
    pipeline["analysis"] = {"is_interior": True}
    assert next_step(plan, pipeline) is Step.GENERATE
    pipeline["images"] = [{"object": "g0"}]
    assert next_step(plan, pipeline) is Step.VERIFY  # a crash after generate resumes here
    pipeline["verdicts"] = [_verdict(0.4, passed=False)]
    assert next_step(plan, pipeline) is Step.GENERATE  # regenerate with the findings
    pipeline["images"] = [{"object": "g0"}, {"object": "g1"}]
    assert next_step(plan, pipeline) is Step.VERIFY
    pipeline["verdicts"] = [_verdict(0.4, False), _verdict(0.9)]
    assert next_step(plan, pipeline) is Step.FINISH
    assert delivered(plan, pipeline) == 1


def test_regenerations_stop_at_the_limit_and_the_best_image_is_delivered():
    plan = plan_for("declutter", None, 1, False)
    pipeline = {"images": [{}, {}], "verdicts": [_verdict(0.6, False), _verdict(0.5, False)]}
    assert next_step(plan, pipeline) is Step.FINISH
    assert delivered(plan, pipeline) == 0  # the better of two failures
    ties = {"images": [{}, {}], "verdicts": [_verdict(0.5, False), _verdict(0.5, False)]}
    assert delivered(plan, ties) == 0
    below = {"images": [{}], "verdicts": [_verdict(0.69)]}  # every check passed, score under 0.7
    assert next_step(plan, below) is Step.GENERATE


def test_every_presets_rubric_makes_a_verdict_schema_titled_for_its_step():
    for name in presets.names():
        plan = plan_for(name, None, None, False)
        assert plan.rubric is not None
        schema = verdict_model(plan.rubric.checks).model_json_schema()
        assert schema["title"] == "Verdict"
        rubric_check = schema["$defs"]["RubricCheck"]["properties"]["name"]
        assert tuple(rubric_check["enum"]) == plan.rubric.checks


def test_the_openapi_rules_agree_with_the_plan():
    import jsonschema

    from lote.jobs.schemas import GenerationRequest

    schema = GenerationRequest.model_json_schema()
    cases = [
        ({"prompt": "x", "verify": True, "max_regenerations": 1}, True),
        ({"prompt": "x", "verify": True, "max_regenerations": 2}, False),
        ({"prompt": "x", "max_regenerations": 5}, True),  # not verified: nothing to limit
        ({"prompt": "x", "require_quality_pass": True}, False),
        ({"prompt": "x", "verify": True, "require_quality_pass": True}, True),
        ({"preset": "declutter", "images": ["https://example.com/room.png"], "max_regenerations": 3}, False),
        (
            {
                "preset": "declutter",
                "images": ["https://example.com/room.png"],
                "verify": False,
                "max_regenerations": 3,
            },
            True,
        ),
        (
            {
                "preset": "declutter",
                "images": ["https://example.com/room.png"],
                "verify": False,
                "require_quality_pass": True,
            },
            False,
        ),
        (
            {"preset": "declutter", "images": ["https://example.com/room.png"], "require_quality_pass": True},
            True,
        ),
    ]
    for body, valid in cases:
        try:
            plan_for(body.get("preset"), body.get("verify"), body.get("max_regenerations"),
                     bool(body.get("require_quality_pass")))  # fmt: skip
            planned = True
        except InvalidRequest:
            planned = False
        contract = jsonschema.Draft202012Validator(schema).is_valid(body)
        assert (planned, contract) == (valid, valid), body
