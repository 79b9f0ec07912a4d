"""Every way an attempt ends, as its Outcome: each exception class (and an image delivered) → the
job's update, the call the dispatcher counts, what the commit makes due, and the answer to Cloud
Tasks. No Firestore: the rules are jobs/outcome.py's, pure."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from lote.clients.model import (
    DEFAULT_RETRY_AFTER_S,
    TEXT,
    ModelOperatorTrouble,
    ModelPermanent,
    ModelThrottled,
    ModelTransient,
)
from lote.jobs import attempts, inputs, memory, outcome
from lote.jobs.outcome import DEFER_CAP_S, MEMORY_RETRY_S, End
from lote.jobs.pipeline import OutOfTime, Result, Stopped
from lote.statuses import JobStatus

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
CREATED = NOW - dt.timedelta(minutes=5)


def _job(**fields: Any) -> dict[str, Any]:
    job = {"tenant_id": "ten_a", "model": "gemini-2.5-flash-image", "status": JobStatus.RUNNING,
           "attempts": 2, "task_gen": 3, "created_at": CREATED}  # fmt: skip
    return {**job, **fields}


def _attempt(job: dict[str, Any] | None = None, **fields: Any) -> outcome.Attempt:
    job = job if job is not None else _job()
    base = outcome.Attempt(job=job, number=int(job["attempts"]), last=False, retried=False, now=NOW,
                           took_ms=1500, image_pool="generation", text_pool="text:gemini-2.5-flash",
                           jitter=1.25)  # fmt: skip
    return dataclasses.replace(base, **fields)


def _not_counted(update: dict[str, Any]) -> None:
    """An attempt that does not count: the job queued again with its attempts given back."""
    assert update["status"] == JobStatus.QUEUED and update["attempts"] == 1


def test_an_image_delivered_succeeds_with_its_output_usage_and_the_call_that_made_it():
    output = {"bucket": "out", "object": "outputs/ten_a/gen_x.png"}
    usage = {"generate": {"model": "gemini-2.5-flash-image", "calls": 1, "ms": 900, "prompt_tokens": 10,
                          "output_tokens": 1290, "thinking_tokens": 0}}  # fmt: skip
    ended = outcome.succeeded(_attempt(), Result(output, None, usage, 900, created=True, image_calls=1))
    assert ended.end is End.SUCCEEDED and ended.created == output
    update = ended.update
    assert update["status"] == JobStatus.SUCCEEDED and update["output"] == output and update["error"] is None
    assert update["usage"] == usage and update["model_ms"] == 900 and "quality" not in update
    call = update["call"]
    assert call["pool"] == "generation" and call["outcome"] == "success" and call["ms"] == 1500
    assert call["tier"] == "interactive" and call["retry"] is False and call["at"] == NOW
    assert call["spend"]["gemini-2.5-flash-image"]["output_tokens"] == 1290
    assert ended.answer(JobStatus.SUCCEEDED).body == {"result": "succeeded"}


def test_a_verified_image_records_its_quality_and_an_adopted_object_is_not_deleted_by_a_cancel():
    quality = {"passed": True, "score": 0.9, "checks": [], "regenerations": 0, "verifier_model": "t"}
    done = Result({"bucket": "out", "object": "o"}, quality, {}, 900, created=False, image_calls=0)
    ended = outcome.succeeded(_attempt(), done)
    assert ended.update["quality"] == quality and ended.created is None
    # A resumed attempt that only verified: its last call was the text model's, with no duration.
    assert ended.update["call"]["pool"] == "text:gemini-2.5-flash" and ended.update["call"]["ms"] is None


def test_a_worker_whose_memory_stayed_full_defers_the_job_without_counting_a_call():
    ended = outcome.of_error(_attempt(), memory.MemoryBusy("the budget is full"))
    assert ended.end is End.DEFERRED and ended.code == "worker_busy"
    _not_counted(ended.update)
    assert ended.update["task_gen"] == 4 and ended.update["enqueued"] is False
    assert "call" not in ended.update and "last_error" not in ended.update
    assert ended.task == (4, MEMORY_RETRY_S * 1.25) and ended.lane is None and ended.wake is None
    assert ended.answer(JobStatus.QUEUED).body == {"result": "deferred", "code": "worker_busy"}
    # A cancel that won the commit is what the answer reports.
    assert ended.answer(JobStatus.CANCELED).body == {"result": "canceled", "code": "worker_busy"}


def test_a_bad_input_fails_the_job_and_a_passing_input_trouble_is_retried_by_the_queue():
    ended = outcome.of_error(_attempt(), inputs.InputError("input_not_found", "gs://in/x is gone"))
    assert ended.end is End.FAILED and ended.update["status"] == JobStatus.FAILED
    assert ended.update["error"] == {
        "code": "input_not_found",
        "message": "gs://in/x is gone",
        "retryable": False,
    }
    assert "call" not in ended.update  # no model was called
    assert ended.answer(JobStatus.FAILED).status == 200
    again = outcome.of_error(_attempt(), inputs.InputError("input_unreachable", "timed out", retryable=True))
    assert again.end is End.RETRY and again.update["status"] == JobStatus.QUEUED
    answer = again.answer(JobStatus.QUEUED)
    assert answer.status == 500 and answer.body["result"] == "retry"
    last = outcome.of_error(_attempt(last=True), inputs.InputError("input_unreachable", "timed out", True))
    assert last.end is End.FAILED


def test_a_cancel_between_steps_ends_the_job_canceled_and_a_lost_job_is_left_alone():
    ended = outcome.of_error(_attempt(), Stopped("canceled"))
    assert ended.end is End.CANCELED and ended.update == {"status": JobStatus.CANCELED}
    assert ended.answer(JobStatus.CANCELED).body == {"result": "canceled"}
    stale = outcome.of_error(_attempt(), Stopped("stale"))
    assert stale.end is End.NOOP and stale.update == {}
    assert stale.answer("stale").body["result"] == "noop"


@pytest.mark.parametrize(("image_calls", "pool"), [(1, "generation"), (0, "text:gemini-2.5-flash")])
def test_an_attempt_out_of_time_goes_on_in_a_new_task_at_once(image_calls: int, pool: str):
    ended = outcome.of_error(_attempt(), OutOfTime(image_calls))
    assert ended.end is End.DEFERRED and ended.code == "out_of_time" and ended.task == (4, 0.0)
    _not_counted(ended.update)
    assert ended.update["call"]["outcome"] == "success" and ended.update["call"]["pool"] == pool


def test_operator_trouble_holds_image_work_and_defers_text_work_spending_nothing():
    trouble = ModelOperatorTrouble("model_key_invalid", "API key expired. Please renew the API key.")
    ended = outcome.of_error(_attempt(), trouble)
    assert ended.end is End.HELD and ended.code == "model_key_invalid" and ended.wake == "generation"
    _not_counted(ended.update)
    assert ended.update["hold"] == "single-ten_a" and ended.update["task_gen"] == 4
    assert (
        ended.update["call"]["outcome"] == "blocked" and ended.update["call"]["reason"] == "model_key_invalid"
    )
    lane, fields = ended.lane or ("", {})
    assert lane == "single-ten_a" and fields["active"] and fields["activated_at"] == NOW
    assert ended.answer(JobStatus.QUEUED).body == {"result": "held", "code": "model_key_invalid"}
    trouble.kind = TEXT
    text = outcome.of_error(_attempt(), trouble)
    assert text.end is End.DEFERRED and text.task == (4, DEFER_CAP_S * 1.25)
    assert text.update["last_error"]["code"] == "model_key_invalid" and text.update["call"][
        "pool"
    ].startswith("text:")


def test_a_quota_error_holds_image_work_in_its_batch_lane_and_defers_text_work_by_its_retry_info():
    job = _job(batch_id="bat_b", tier="economy")
    ended = outcome.of_error(_attempt(job), ModelThrottled("Resource exhausted", 7))
    assert ended.end is End.HELD and ended.update["hold"] == "batch-bat_b"
    assert ended.update["hold_rank"] == -1  # first out of its lane when released again
    assert ended.update["call"]["outcome"] == "quota" and ended.update["call"]["tier"] == "economy"
    assert (ended.lane or ("", {}))[1]["batch_id"] == "bat_b"
    text = ModelThrottled("Resource exhausted", 7)
    text.kind = TEXT
    assert outcome.of_error(_attempt(job), text).task == (4, 7 * 1.25)
    text.retry_after_s = None
    assert outcome.of_error(_attempt(job), text).task == (4, DEFAULT_RETRY_AFTER_S * 1.25)


def test_a_refusal_fails_the_job_and_counts_as_the_model_working():
    ended = outcome.of_error(_attempt(), ModelPermanent("safety_blocked", "IMAGE_SAFETY"))
    assert ended.end is End.FAILED and ended.update["error"]["code"] == "safety_blocked"
    assert ended.update["call"]["outcome"] == "success"


def test_a_model_failure_is_retried_unless_the_breaker_opened_after_the_job_was_released():
    failure = ModelTransient("model_unavailable", "The model is overloaded.")
    assert outcome.asks_breaker(failure) and not outcome.asks_breaker(ModelPermanent("x", "y"))
    assert not outcome.asks_breaker(ModelThrottled("q", None)) and not outcome.asks_breaker(None)
    retried = outcome.of_error(_attempt(), failure)
    assert retried.end is End.RETRY and retried.update["call"]["outcome"] == "failure"
    assert retried.update["error_streak"] == 1 and retried.answer(JobStatus.QUEUED).status == 500
    # Released before the model went down for everyone: held, its attempt not spent.
    opened_later = outcome.of_error(_attempt(breaker_opened_at=CREATED + dt.timedelta(minutes=1)), failure)
    assert opened_later.end is End.HELD and opened_later.update["call"]["outcome"] == "failure"
    # Released after it opened: a probe, whose failure counts.
    probe = outcome.of_error(_attempt(breaker_opened_at=CREATED - dt.timedelta(minutes=1)), failure)
    assert probe.end is End.RETRY


def test_the_third_unusable_answer_in_a_row_fails_the_job():
    job = _job(last_error={"code": "no_image", "message": "NO_IMAGE", "retryable": True}, error_streak=2)
    ended = outcome.of_error(_attempt(job), ModelTransient("no_image", "NO_IMAGE"))
    assert ended.end is End.FAILED and ended.update["error"]["message"].endswith("3 such answers in a row)")
    assert attempts.ends_job(job, ModelTransient("no_image", "NO_IMAGE"), last_attempt=False)


def test_storage_trouble_slows_the_whole_queue_and_counts_a_call_only_once_the_model_answered():
    before = outcome.storage_failed(_attempt(), "ServiceUnavailable: 503", model_called=False)
    assert before.end is End.RETRY and "call" not in before.update
    answer = before.answer(JobStatus.QUEUED)
    assert answer.status == 503 and answer.body["error"]["code"] == "storage_unavailable"
    after = outcome.storage_failed(_attempt(), "ServiceUnavailable: 503", model_called=True)
    assert after.update["call"]["outcome"] == "success"


def test_an_exception_without_a_rule_is_not_turned_into_an_outcome():
    with pytest.raises(TypeError, match="no outcome for KeyError"):
        outcome.of_error(_attempt(), KeyError("bug"))
