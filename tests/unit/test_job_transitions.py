"""A job's state rules without Firestore: who may start an attempt, how a failure is judged, which
model errors are retried, and that the statuses the API documents are the ones stored."""

from __future__ import annotations

import datetime as dt
import typing

import pytest

from lote.batches.schemas import BatchStatus as BatchStatusLiteral
from lote.clients.model import ModelOperatorTrouble, ModelPermanent, ModelThrottled, ModelTransient, classify
from lote.jobs import attempts, store
from lote.jobs.schemas import Status as JobStatusLiteral
from lote.leases import Claim, ClaimKind
from lote.statuses import IN_FLIGHT, TERMINAL, UNPAID, BatchStatus, DeliveryStatus, JobStatus
from lote.webhooks.schemas import Delivery

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=90)
CHECK_AT = NOW + dt.timedelta(minutes=31)


def test_the_documented_statuses_are_the_stored_ones():
    assert set(typing.get_args(JobStatusLiteral)) == set(JobStatus)
    assert set(typing.get_args(BatchStatusLiteral)) == set(BatchStatus)
    delivery_status = Delivery.model_fields["status"].annotation
    assert set(typing.get_args(delivery_status)) == set(DeliveryStatus)


def test_every_job_status_is_in_flight_or_terminal_and_unpaid_ones_are_terminal():
    assert set(IN_FLIGHT) | TERMINAL == set(JobStatus)
    assert not set(IN_FLIGHT) & TERMINAL
    assert UNPAID < TERMINAL and JobStatus.SUCCEEDED not in UNPAID


@pytest.mark.parametrize(
    ("job", "kind"),
    [
        (None, ClaimKind.NOOP),
        ({"status": "succeeded"}, ClaimKind.NOOP),
        ({"status": "failed"}, ClaimKind.NOOP),
        ({"status": "canceled"}, ClaimKind.NOOP),
        ({"status": "running", "lease_until": NOW + dt.timedelta(seconds=30), "attempts": 1}, ClaimKind.BUSY),
    ],
)
def test_an_attempt_does_not_start_on_a_finished_job_or_under_a_live_lease(job, kind):
    verdict = store.attempt_rule(LEASE, CHECK_AT)(job, NOW)
    assert isinstance(verdict, Claim) and verdict.kind is kind


def test_a_busy_answer_asks_for_a_short_retry():
    job = {"status": "running", "lease_until": NOW + dt.timedelta(seconds=80), "attempts": 1}
    verdict = store.attempt_rule(LEASE, CHECK_AT)(job, NOW)
    assert isinstance(verdict, Claim) and 1 <= verdict.retry_after <= store.BUSY_RETRY_AFTER_S


@pytest.mark.parametrize(
    "job",
    [
        {"status": "queued", "attempts": 0, "started_at": None},
        {"status": "running", "attempts": 2, "lease_until": NOW - dt.timedelta(seconds=1), "started_at": NOW},
    ],
)
def test_a_queued_job_or_an_expired_lease_starts_the_next_attempt(job):
    update = store.attempt_rule(LEASE, CHECK_AT)(job, NOW)
    assert isinstance(update, dict)
    assert update["status"] == JobStatus.RUNNING
    assert update["attempts"] == job["attempts"] + 1
    assert update["lease_until"] == NOW + LEASE
    assert update["enqueued"] is True
    assert update["task_check_at"] == CHECK_AT  # its enqueue was never recorded: now the sweep watches it
    assert update.get("started_at", job["started_at"]) == (job["started_at"] or NOW)


def _judge(code="model_unavailable", retryable=True, last=False, job=None):
    return attempts.judge(job or {}, code, "message", retryable, last)


def test_one_images_transient_failure_retries_with_a_plain_500_and_shared_trouble_with_503():
    # A 503 slows the whole queue (Cloud Tasks' congestion control): one image's fault must not.
    assert _judge("model_timeout").status == 500 and _judge("model_bad_response").status == 500
    assert _judge("input_unreachable").status == 500
    assert _judge("storage_unavailable").status == 503


@pytest.mark.parametrize(("retryable", "last"), [(False, False), (True, True), (False, True)])
def test_a_permanent_error_or_the_last_attempt_fails_the_job(retryable, last):
    verdict = _judge(retryable=retryable, last=last)
    assert verdict.final and verdict.status == 200
    assert verdict.update == {
        "status": JobStatus.FAILED,
        "error": {
            "code": "model_unavailable",
            "message": "message",
            "retryable": retryable,
        },
    }


@pytest.mark.parametrize("code", ["model_bad_response", "no_image", "model_max_tokens"])
def test_the_same_unusable_answer_three_times_in_a_row_fails_the_job(code: str):
    first = _judge(code)
    assert not first.final and first.update["error_streak"] == 1
    second = _judge(code, job={"last_error": {"code": code}, "error_streak": 1})
    assert not second.final and second.update["error_streak"] == 2
    third = _judge(code, job={"last_error": {"code": code}, "error_streak": 2})
    assert third.final and third.update["error"]["retryable"] is False
    # Another error in between starts the streak again; other codes never give up early.
    assert not _judge(code, job={"last_error": {"code": "model_timeout"}, "error_streak": 5}).final
    assert not _judge("model_timeout", job={"last_error": {"code": "model_timeout"}, "error_streak": 9}).final


def test_long_messages_are_cut_to_a_thousand_characters():
    verdict = attempts.judge({}, "model_unavailable", "x" * 5000, False, False)
    assert len(verdict.update["error"]["message"]) == 1000


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, ModelThrottled, "model_rate_limited"),
        (400, ModelPermanent, "model_invalid_argument"),
        (404, ModelOperatorTrouble, "model_not_available"),
        (401, ModelOperatorTrouble, "model_key_invalid"),
        (403, ModelOperatorTrouble, "model_access_denied"),
        (500, ModelTransient, "model_unavailable"),
        (503, ModelTransient, "model_unavailable"),
    ],
)
def test_model_http_errors_are_classified(status, kind, code):
    failure = classify(status, "text", {})
    assert type(failure) is kind and failure.code == code


def test_a_429_waits_as_long_as_the_model_asks():
    body = {
        "error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31.2s"}]}
    }
    failure = classify(429, "text", body)
    assert isinstance(failure, ModelThrottled) and failure.retry_after_s == 32
    assert (
        isinstance(plain := classify(429, "text", None), ModelThrottled) and plain.retry_after_s is None
    )  # the dispatcher paces


def test_an_attempt_keeps_the_check_time_its_enqueue_recorded():
    recorded = NOW + dt.timedelta(minutes=5)
    update = store.attempt_rule(LEASE, CHECK_AT)(
        {"status": "queued", "attempts": 0, "task_check_at": recorded}, NOW
    )
    assert isinstance(update, dict) and "task_check_at" not in update
