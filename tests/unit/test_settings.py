"""The settings object: environment names, and refusals that keep production safe."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lote.settings import Mode, Settings


def test_reads_google_names_and_lote_prefix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p1")
    monkeypatch.setenv("LOTE_MODE", "local")
    monkeypatch.setenv("CLOUD_TASKS_EMULATOR_HOST", "127.0.0.1:1")
    settings = Settings()
    assert settings.project_id == "p1" and settings.mode is Mode.LOCAL
    assert settings.cloud_tasks_emulator_host == "127.0.0.1:1"


def test_production_refuses_an_emulator_endpoint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LOTE_MODE", raising=False)
    monkeypatch.setenv("CLOUD_TASKS_EMULATOR_HOST", "127.0.0.1:1")
    with pytest.raises(ValidationError, match="LOTE_MODE"):
        Settings()


def test_real_model_is_selected_by_key_or_vertex(monkeypatch: pytest.MonkeyPatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "LOTE_USE_VERTEXAI"):
        monkeypatch.delenv(key, raising=False)
    assert not Settings().uses_real_model
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    assert Settings().uses_real_model


def test_production_refuses_a_stripe_api_base(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOTE_STRIPE_API_BASE", "http://127.0.0.1:1")
    with pytest.raises(ValidationError, match="LOTE_STRIPE_API_BASE"):
        Settings()


def test_credit_packs_come_from_json_and_must_be_positive(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LOTE_CREDIT_PACKS", '{"starter": 50}')
    assert Settings().credit_packs == {"starter": 50}
    monkeypatch.setenv("LOTE_CREDIT_PACKS", '{"starter": 0}')
    with pytest.raises(ValidationError, match="LOTE_CREDIT_PACKS"):
        Settings()
