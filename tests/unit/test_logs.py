"""Structured logs (lote/logs.py): one JSON object a line, as Cloud Logging reads it, with the
request's trace, the bound labels and an emitted event's fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import flask
import pytest
from google.cloud.logging.handlers import StructuredLogHandler

from lote import logs

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = StructuredLogHandler(project_id="lote-test", stream=out)
    handler.filters.insert(0, logs._Labels())
    logger = logging.getLogger("lote.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield out
    logger.removeHandler(handler)


def _read(out: io.StringIO) -> list[dict[str, object]]:
    """The lines written, but the library's one diagnostic line a process (its instrumentation info)."""
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in found if "logging.googleapis.com/diagnostic" not in line]


def test_an_event_is_a_json_line_with_its_fields_labels_and_the_requests_trace(lines: io.StringIO):
    app = flask.Flask("t")
    headers = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    with app.test_request_context("/tasks/generate", headers=headers), logs.bound(job_id="gen_1", attempt=2):
        logs.emit(logging.getLogger("lote.test-logs"), logging.WARNING, "job.failed", "job %s failed", "gen_1",
                  code="safety_blocked", model_ms=0)  # fmt: skip
    (line,) = _read(lines)
    assert line["severity"] == "WARNING" and line["message"] == "job gen_1 failed"
    assert line["event"] == "job.failed" and line["code"] == "safety_blocked" and line["model_ms"] == 0
    assert line["logging.googleapis.com/trace"] == f"projects/lote-test/traces/{TRACE}"
    assert line["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert line["logging.googleapis.com/trace_sampled"] is True
    labels = line["logging.googleapis.com/labels"]
    assert isinstance(labels, dict) and labels["job_id"] == "gen_1" and labels["attempt"] == "2"


def test_labels_are_bound_only_inside_their_block_and_nest(lines: io.StringIO):
    logger = logging.getLogger("lote.test-logs")
    with logs.bound(tenant_id="ten_a"):
        with logs.bound(job_id="gen_1", batch_id=None):
            logger.info("inner")
        logger.info("outer")
    logger.info("after")
    inner, outer, after = (line["logging.googleapis.com/labels"] for line in _read(lines))
    assert isinstance(inner, dict) and isinstance(outer, dict) and isinstance(after, dict)
    assert inner["tenant_id"] == "ten_a" and inner["job_id"] == "gen_1" and "batch_id" not in inner
    assert "job_id" not in outer and outer["tenant_id"] == "ten_a"
    assert "tenant_id" not in after
