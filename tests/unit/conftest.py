"""Unit tests run with none of lote's or Google's variables from the surrounding shell."""

from __future__ import annotations

import os

import pytest

_PREFIXES = ("LOTE_", "GOOGLE_", "GEMINI_")
_NAMES = {"FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every variable the settings objects could read."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _NAMES:
            monkeypatch.delenv(name)
