"""The image model through google-genai: real Gemini with a key or Vertex, else the offline server."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lote.errors import Unavailable
from lote.settings import Settings

if TYPE_CHECKING:
    from google import genai

OFFLINE_API_KEY = "offline-model-key"


class ModelClient:
    """Holds one genai.Client per process, with the SDK's own retries off (Cloud Tasks retries)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: genai.Client | None = None

    @property
    def backend(self) -> str:
        """Which model endpoint is in use: `vertex`, `gemini` or `offline`."""
        s = self._settings
        return "vertex" if s.use_vertexai else "gemini" if s.gemini_api_key else "offline"

    @property
    def client(self) -> genai.Client:
        """The genai client, created on first access."""
        with self._lock:
            if self._client is None:
                self._client = self._build()
            return self._client

    def _build(self) -> genai.Client:
        from google import genai
        from google.genai import types

        s = self._settings
        options = types.HttpOptions(
            timeout=int(s.model_timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if s.use_vertexai:
            return genai.Client(
                vertexai=True, project=s.project_id, location=s.location, http_options=options
            )
        if s.gemini_api_key:
            return genai.Client(api_key=s.gemini_api_key, http_options=options)
        if not s.model_base_url:
            raise Unavailable(
                "no model configured: set GEMINI_API_KEY, Vertex settings or LOTE_MODEL_BASE_URL"
            )
        options.base_url = s.model_base_url
        return genai.Client(api_key=OFFLINE_API_KEY, http_options=options)
