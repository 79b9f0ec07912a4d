"""Answers Gemini really sent (tests/fixtures/gemini/, each with its provenance), replayed through the
real google-genai client and lote's clients/model.py: only the HTTP transport is replaced (httpx's
MockTransport answers the recorded status and body), so the SDK's parsing, its error wrapping and
lote's classification all run as in production.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from lote.clients import model
from lote.clients.model import (
    ModelClient,
    ModelOperatorTrouble,
    ModelPermanent,
    ModelThrottled,
    ModelTransient,
)
from lote.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "gemini"
FILES = sorted(CORPUS.glob("*.json"))
# What each class of answer must become: (the exception, its code) or None for an answer.
EXPECTED: dict[str, tuple[type[model.ModelFailure], str | None] | None] = {
    "success": None,
    "text_json_success": None,
    "no_image_transient": (ModelTransient, "no_image"),
    "max_tokens": (ModelTransient, "model_max_tokens"),
    "safety_blocked": (ModelPermanent, "safety_blocked"),
    "invalid_argument": (ModelPermanent, "model_invalid_argument"),
    "operator_trouble": (ModelOperatorTrouble, None),
    "quota_per_day": (ModelOperatorTrouble, "model_quota_per_day"),
    "quota_throttled": (ModelThrottled, "model_rate_limited"),
    "transient_server": (ModelTransient, "model_unavailable"),
}


class AnyObject(BaseModel):
    """A JSON object of any fields (the recordings' own schemas are not lote's): extras are ignored."""


def _client(recording: dict[str, Any], seen: list[httpx.Request]) -> ModelClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = recording["body"]
        raw = body if isinstance(body, str) else json.dumps(body)
        return httpx.Response(int(recording["http_status"]), content=raw.encode(),
                              headers={"content-type": "application/json"})  # fmt: skip

    transport = {"transport": httpx.MockTransport(answer)}
    if recording["provenance"].get("api") == "vertex":
        from google.oauth2.credentials import Credentials

        settings = Settings(
            _env_file=None, project_id="corpus", model_location="us-central1", LOTE_USE_VERTEXAI=True
        )
        return ModelClient(settings, transport, Credentials(token="recorded"))
    settings = Settings(_env_file=None, gemini_api_key="recorded-key")
    return ModelClient(settings, transport)


def _replay(recording: dict[str, Any]) -> tuple[Any, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    client = _client(recording, seen)
    # The call lote would make: its image call, or a pipeline step's JSON call to the text model.
    if recording["call"] == "image":
        return model.generate_image(client, "gemini-2.5-flash-image", "a cat", [], None), seen
    return model.generate_json(client, "gemini-2.5-flash", "describe", [], AnyObject), seen


def test_the_corpus_covers_every_class_with_its_provenance():
    recordings = {path.name: json.loads(path.read_text()) for path in FILES}
    assert len(recordings) >= 20
    for name, recording in recordings.items():
        provenance = recording["provenance"]
        assert provenance.get("source", "").startswith("http"), name
        assert provenance.get("api") in ("developer", "vertex"), name
        assert recording["expected_class"] in EXPECTED, name
        assert recording["call"] in ("image", "text"), name
    classes = {r["expected_class"] for r in recordings.values()}
    missing = {"success", "no_image_transient", "safety_blocked", "operator_trouble", "quota_throttled",
               "quota_per_day", "transient_server", "max_tokens", "text_json_success"} - classes  # fmt: skip
    assert not missing
    assert {r["provenance"]["api"] for r in recordings.values()} == {"developer", "vertex"}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_recorded_answer_is_classified_as_an_operator_would(path: Path):
    recording = json.loads(path.read_text())
    expected = EXPECTED[recording["expected_class"]]
    if expected is None:
        answer, seen = _replay(recording)
        assert len(seen) == 1  # the SDK's own retries stay off: Cloud Tasks retries
        if isinstance(answer, model.ModelImage):
            assert answer.data and answer.mime_type.startswith("image/")
            final = _final_image(recording["body"])
            assert answer.data == final[0] and answer.mime_type == final[1]
        assert answer.usage["prompt_tokens"] >= 0
        _usage_as_billed(recording["body"], answer.usage)
        return
    kind, code = expected
    with pytest.raises(model.ModelFailure) as raised:
        _replay(recording)
    assert type(raised.value) is kind, (raised.value.code, raised.value.message)
    if code is not None:
        assert raised.value.code == code
    want = recording.get("expected_code")
    if want is not None:
        assert raised.value.code == want
    if (
        isinstance(raised.value, ModelThrottled | ModelOperatorTrouble)
        and "expected_retry_after_s" in recording
    ):
        assert raised.value.retry_after_s == recording["expected_retry_after_s"]


def _final_image(body: Any) -> tuple[bytes, str]:
    """The last non-thought image part of a recorded body, decoded as the SDK decodes it."""
    import base64

    parts = body["candidates"][0]["content"]["parts"]
    finals = [p for p in parts if "inlineData" in p and not p.get("thought")]
    inline = finals[-1]["inlineData"]
    data = inline["data"]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)), inline["mimeType"]


def _usage_as_billed(body: Any, usage: dict[str, int]) -> None:
    """Thinking tokens (billed as output) and the counts by modality are kept, not dropped."""
    recorded = body.get("usageMetadata") or {}
    assert usage["thinking_tokens"] == recorded.get("thoughtsTokenCount", 0)
    assert usage["output_tokens"] == recorded.get("candidatesTokenCount", 0)
    for side, key in (("prompt", "promptTokensDetails"), ("output", "candidatesTokensDetails")):
        for detail in recorded.get(key) or []:
            assert usage[f"{side}_{detail['modality'].lower()}_tokens"] >= detail.get("tokenCount", 0)
