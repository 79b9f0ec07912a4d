"""Gemini batch mode as recorded (tests/fixtures/gemini/batch/, each with its provenance), replayed
through the real google-genai client and lote's clients/model_batches.py (only the HTTP transport is
replaced), and the offline model's batch mode held to the same shapes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from lote.clients import model_batches
from lote.clients.model import ModelClient, ModelThrottled, ModelTransient
from lote.settings import Settings
from lote_local.batch_mode import BatchMode

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "gemini" / "batch"


def _recorded(name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((CORPUS / name).read_text())
    assert found["provenance"]["retrieved"]  # every recording says where and when it came from
    return found


def _client(status: int, body: Any) -> ModelClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )

    settings = Settings(_env_file=None, gemini_api_key="recorded-key")
    return ModelClient(settings, {"transport": httpx.MockTransport(answer)})


def test_a_recorded_succeeded_batch_is_read_with_its_output_file():
    recording = _recorded("get-succeeded-responses-file.json")
    state = model_batches.get(_client(recording["http_status"], recording["body"]), "batches/file1")
    assert state.state == model_batches.SUCCEEDED and state.ended
    assert state.output_file == "files/batch-out-1"


def test_recorded_output_lines_are_read_as_an_online_answer_would_be():
    lines = _recorded("output-lines.json")["lines"]
    # A text answer to what asked for an image is no image (transient, as online).
    with pytest.raises(ModelTransient) as text:
        model_batches.read_line(lines["text-response"])
    assert text.value.code == "no_image"
    with pytest.raises(ModelThrottled):
        model_batches.read_line(lines["error-429"])


def test_a_grpc_status_code_in_a_line_is_read_as_its_http_status():
    with pytest.raises(ModelTransient) as unavailable:
        model_batches.read_line({"key": "k", "error": {"code": 14, "message": "unavailable"}})
    assert unavailable.value.code == "model_unavailable"


def test_the_offline_batch_mode_answers_in_the_recorded_shape():
    recorded = _recorded("get-succeeded-responses-file.json")["body"]
    answer = {"response": {"candidates": []}}
    offline = BatchMode(lambda _model, _request: answer, turnaround_s=0.0)
    source = offline.upload_chunk(
        offline.start_upload({}, b"{}"), 0, b'{"key": "k-0", "request": {}}\n', True
    )
    assert source is not None
    made = offline.create(
        "gemini-2.5-flash-image", {"displayName": "mb", "inputConfig": {"fileName": source.name}}
    )
    time.sleep(0.01)
    body = offline.resource(offline.get(made.name) or made)
    assert set(recorded) <= set(body) and body["done"] is True
    assert set(recorded["metadata"]) <= set(body["metadata"])
    assert body["metadata"]["state"] == recorded["metadata"]["state"]
    assert all(isinstance(v, str) for v in body["metadata"]["batchStats"].values())  # int64 as strings
    assert body["response"]["@type"] == recorded["response"]["@type"]
    output = offline.file(body["response"]["responsesFile"])
    assert output is not None and json.loads(output.data) == {**answer, "key": "k-0"}
