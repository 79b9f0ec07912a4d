"""The image model through google-genai: real Gemini with a key or Vertex, else the offline server."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from lote.clients.lazy import Lazy
from lote.errors import Unavailable
from lote.settings import Settings

if TYPE_CHECKING:
    from google import genai

OFFLINE_API_KEY = "offline-model-key"
Answer = TypeVar("Answer", bound=BaseModel)


class ModelClient:
    """Holds one genai.Client per process, with the SDK's own retries off (Cloud Tasks retries)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Lazy[genai.Client] = Lazy(self._build)

    @property
    def backend(self) -> str:
        """Which model endpoint is in use: `vertex`, `gemini` or `offline`."""
        s = self._settings
        return "vertex" if s.use_vertexai else "gemini" if s.uses_real_model else "offline"

    @property
    def client(self) -> genai.Client:
        """The genai client, created on first access."""
        return self._client.get()

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
                vertexai=True,
                project=s.project_id,
                location=s.model_location or s.location,
                http_options=options,
            )
        if s.gemini_api_key and s.gemini_api_key.get_secret_value():
            return genai.Client(api_key=s.gemini_api_key.get_secret_value(), http_options=options)
        if not s.model_base_url:
            raise Unavailable(
                "no model configured: set GEMINI_API_KEY, Vertex settings or LOTE_MODEL_BASE_URL"
            )
        options.base_url = s.model_base_url
        return genai.Client(api_key=OFFLINE_API_KEY, http_options=options)


IMAGE, TEXT = "image", "text"


class ModelFailure(Exception):
    """A model call that produced no answer; subclasses say whether retrying can help, `kind`
    which model failed (`image` or `text`: each draws on its own quota)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kind = IMAGE


class ModelThrottled(ModelFailure):
    """Quota exhausted (429 / RESOURCE_EXHAUSTED): slow the whole queue down."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__("model_rate_limited", message)
        self.retry_after_s = retry_after_s


class ModelTransient(ModelFailure):
    """5xx, timeout, network error, garbled answer: retry later."""


class ModelPermanent(ModelFailure):
    """Safety block, no image, invalid argument: retrying gives the same answer."""


@dataclass(frozen=True)
class ModelImage:
    """One generated image and what the call cost."""

    data: bytes
    mime_type: str
    elapsed_ms: int
    usage: dict[str, int]


_BLOCKED = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
            "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}  # fmt: skip
_DEFAULT_RETRY_AFTER_S = 10


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP libraries' transport errors (google-genai uses httpx or its fork httpx2)."""
    found: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found.append(module.HTTPError)
    return tuple(found)


def _retry_delay(details: object) -> int:
    """Seconds from a google.rpc.RetryInfo in an error body, or a default."""
    error = details.get("error", {}) if isinstance(details, dict) else {}
    for item in error.get("details", []) if isinstance(error, dict) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            text = str(item.get("retryDelay", "")).rstrip("s")
            try:
                return max(1, math.ceil(float(text)))
            except ValueError:
                break
    return _DEFAULT_RETRY_AFTER_S


def classify(status: int, text: str, details: object) -> ModelFailure:
    """The failure an HTTP error of the model API is: 429 throttled (with the RetryInfo delay), 400
    and 404 permanent, anything else transient (5xx, and 401/403: a key or IAM mistake an operator
    can fix while the task keeps retrying)."""
    if status == 429:
        return ModelThrottled(text, _retry_delay(details))
    if status == 404:
        return ModelPermanent("model_not_found", text)
    if status == 400:
        return ModelPermanent("model_invalid_argument", text)
    return ModelTransient("model_unavailable", text)


def generate_image(
    client: ModelClient, model: str, prompt: str, images: list[tuple[bytes, str]], aspect_ratio: str | None
) -> ModelImage:
    """One generateContent call for an image; every failure is classified."""
    from google.genai import types

    contents: list[Any] = [prompt, *(types.Part.from_bytes(data=d, mime_type=m) for d, m in images)]
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"],
        image_config=types.ImageConfig(aspect_ratio=aspect_ratio) if aspect_ratio else None,
    )
    response, elapsed = _call(client, model, contents, config)
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        raise ModelPermanent("safety_blocked", f"prompt blocked: {feedback.block_reason}")
    candidate = response.candidates[0] if response.candidates else None
    reason = str(candidate.finish_reason.value) if candidate and candidate.finish_reason else ""
    if reason in _BLOCKED:
        raise ModelPermanent("safety_blocked", f"the model refused to draw this ({reason})")
    parts = candidate.content.parts if candidate and candidate.content and candidate.content.parts else []
    for part in parts:
        if part.inline_data is not None and part.inline_data.data:
            return ModelImage(
                data=part.inline_data.data,
                mime_type=part.inline_data.mime_type or "image/png",
                elapsed_ms=elapsed,
                usage=_usage(response),
            )
    raise ModelPermanent("no_image", f"the model returned no image (finish reason {reason or 'none'})")


@dataclass(frozen=True)
class ModelAnswer(Generic[Answer]):
    """One structured answer of the text model and what the call cost."""

    value: Answer
    elapsed_ms: int
    usage: dict[str, int]


def generate_json(
    client: ModelClient, model: str, prompt: str, images: list[tuple[bytes, str]], schema: type[Answer]
) -> ModelAnswer[Answer]:
    """One generateContent call answered as JSON in `schema` (google-genai `response_schema`); an
    answer that does not fit the schema is a transient failure (the next attempt asks again).
    Failures are of kind `text`."""
    try:
        return _json_answer(client, model, prompt, images, schema)
    except ModelFailure as exc:
        exc.kind = TEXT
        raise


def _json_answer(
    client: ModelClient, model: str, prompt: str, images: list[tuple[bytes, str]], schema: type[Answer]
) -> ModelAnswer[Answer]:
    from google.genai import types
    from pydantic import ValidationError

    contents: list[Any] = [prompt, *(types.Part.from_bytes(data=d, mime_type=m) for d, m in images)]
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=schema)
    response, elapsed = _call(client, model, contents, config)
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        raise ModelPermanent("safety_blocked", f"prompt blocked: {feedback.block_reason}")
    try:
        value = schema.model_validate_json(response.text or "")
    except ValidationError as exc:
        raise ModelTransient(
            "model_bad_response", f"the answer does not fit {schema.__name__}: {exc}"
        ) from None
    return ModelAnswer(value, elapsed, _usage(response))


def _call(client: ModelClient, model: str, contents: list[Any], config: Any) -> tuple[Any, int]:
    """The generateContent call and its milliseconds; transport and API errors classified."""
    from google.genai import errors

    started = time.monotonic()
    try:
        response = client.client.models.generate_content(model=model, contents=contents, config=config)
    except errors.APIError as exc:
        status = exc.code or 0
        raise classify(status, f"{status} {exc.status}: {exc.message}", exc.details) from None
    except _transport_errors() as exc:
        kind = "model_timeout" if "timeout" in type(exc).__name__.lower() else "model_unreachable"
        raise ModelTransient(kind, f"{type(exc).__name__}: {exc}") from None
    except ValueError as exc:  # a body that is not the JSON it claims to be
        raise ModelTransient("model_bad_response", f"unreadable model response: {exc}") from None
    return response, int((time.monotonic() - started) * 1000)


def _usage(response: Any) -> dict[str, int]:
    usage = response.usage_metadata
    return {
        "prompt_tokens": (usage.prompt_token_count or 0) if usage else 0,
        "output_tokens": (usage.candidates_token_count or 0) if usage else 0,
    }
