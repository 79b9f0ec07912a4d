"""The image model through google-genai: real Gemini with a key or Vertex, else the offline server."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from lote import tracing
from lote.clients.lazy import Lazy
from lote.errors import Unavailable
from lote.settings import Settings

if TYPE_CHECKING:
    from google import genai

OFFLINE_API_KEY = "offline-model-key"
Answer = TypeVar("Answer", bound=BaseModel)


class ModelClient:
    """Holds one genai.Client per process, with the SDK's own retries off (Cloud Tasks retries)."""

    def __init__(
        self, settings: Settings, client_args: dict[str, Any] | None = None, credentials: Any = None
    ) -> None:
        # `client_args` reach the SDK's httpx client (the corpus test's recorded-answer transport);
        # `credentials` replace Vertex AI's default ones.
        self._settings = settings
        self._client_args = client_args
        self._credentials = credentials
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
            client_args=self._client_args,
        )
        if s.use_vertexai:
            return genai.Client(
                vertexai=True,
                project=s.project_id,
                location=s.model_location or s.location,
                credentials=self._credentials,
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
    """Quota exhausted for now (429 / RESOURCE_EXHAUSTED): slow the whole queue down.
    `retry_after_s` is the answer's RetryInfo (or the "retry in Ns" of its message), else None:
    the dispatcher's own pacing decides."""

    def __init__(self, message: str, retry_after_s: int | None) -> None:
        super().__init__("model_rate_limited", message)
        self.retry_after_s = retry_after_s


class ModelTransient(ModelFailure):
    """5xx, timeout, network error, garbled answer, an answer without an image: retry later."""


class ModelPermanent(ModelFailure):
    """Safety block, invalid argument: retrying gives the same answer."""


class ModelOperatorTrouble(ModelFailure):
    """The deployment cannot use the model: a bad or expired key, the API or billing disabled, a
    permission missing, the model not served to this project or region, the day's quota spent. No
    image's fault: the job waits (held, its attempt not counted, nothing refunded) and dispatch for
    the model stops until a probe gets through (dispatch/control.py, Breaker.BLOCKED)."""

    def __init__(self, code: str, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ModelImage:
    """One generated image and what the call cost."""

    data: bytes
    mime_type: str
    elapsed_ms: int
    usage: dict[str, int]


# Finish reasons and prompt block reasons that refuse this content: asking again gets the same
# answer (recorded answers: tests/fixtures/gemini/).
_BLOCKED = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
            "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "LANGUAGE"}  # fmt: skip
# ErrorInfo reasons that say the key is wrong (the Developer API answers 400 INVALID_ARGUMENT, not 401).
_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED",
                "API_KEY_HTTP_REFERRER_BLOCKED", "API_KEY_IP_ADDRESS_BLOCKED", "ACCESS_TOKEN_EXPIRED",
                "ACCESS_TOKEN_TYPE_UNSUPPORTED"}  # fmt: skip
_RETRY_HINT = re.compile(r"retry in ([0-9]+(?:\.[0-9]+)?)\s*(ms|s)\b", re.IGNORECASE)
DEFAULT_RETRY_AFTER_S = 10  # a text call's quota error without a hint: defer about this long


def transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP libraries' transport errors (google-genai uses httpx or its fork httpx2)."""
    found: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found.append(module.HTTPError)
    return tuple(found)


@dataclass(frozen=True)
class ErrorBody:
    """What a google.rpc.Status error body says, read leniently (the Developer API wraps it in a
    one-element list at times; Vertex AI's quota errors carry no details at all)."""

    status: str = ""
    message: str = ""
    reasons: frozenset[str] = frozenset()  # ErrorInfo.reason
    quota_ids: tuple[str, ...] = ()  # QuotaFailure.violations[].quotaId
    retry_delay_s: int | None = None  # RetryInfo.retryDelay, else the message's "retry in Ns"

    @classmethod
    def read(cls, details: object) -> ErrorBody:
        """The body's error, whatever its wrapping."""
        if isinstance(details, list) and len(details) == 1:
            details = details[0]
        error = details.get("error", details) if isinstance(details, dict) else {}
        if not isinstance(error, dict):
            return cls()
        reasons, quota_ids, delay = set(), [], None
        for item in error.get("details") or []:
            kind = str(item.get("@type", "")) if isinstance(item, dict) else ""
            if kind.endswith("ErrorInfo"):
                reasons.add(str(item.get("reason", "")))
            elif kind.endswith("QuotaFailure"):
                quota_ids += [
                    str(v.get("quotaId", "")) for v in item.get("violations") or [] if isinstance(v, dict)
                ]
            elif kind.endswith("RetryInfo"):
                delay = _seconds(str(item.get("retryDelay", "")).rstrip("s"), "s")
        message = str(error.get("message") or "")
        if delay is None and (hint := _RETRY_HINT.search(message)):
            delay = _seconds(hint.group(1), hint.group(2).lower())
        return cls(str(error.get("status") or ""), message, frozenset(reasons), tuple(quota_ids), delay)

    @property
    def per_day(self) -> bool:
        """A quota that no slowing down clears: it refills when the day turns."""
        return any("perday" in q.lower().replace("_", "") for q in self.quota_ids)


def _seconds(number: str, unit: str) -> int | None:
    try:
        value = float(number) / (1000 if unit == "ms" else 1)
    except ValueError:
        return None
    return max(1, math.ceil(value))


def classify(status: int, text: str, details: object) -> ModelFailure:
    """The failure an HTTP error of the model API is. Operator trouble (key, permission, API or
    billing disabled, model not served here, the day's quota) is nobody's image's fault; 429 is a
    pace above the quota; any other 400 is this request's (permanent); 5xx and the rest transient.
    Each rule is held to recorded answers by tests/unit/test_model_corpus.py."""
    body = ErrorBody.read(details)
    if status == 429:
        if body.per_day:
            return ModelOperatorTrouble("model_quota_per_day", text, body.retry_delay_s)
        return ModelThrottled(text, body.retry_delay_s)
    if status == 401 or body.reasons & _KEY_REASONS:
        return ModelOperatorTrouble("model_key_invalid", text)
    if status == 403:
        return ModelOperatorTrouble("model_access_denied", text)
    if status == 404:
        return ModelOperatorTrouble("model_not_available", text)
    if status == 400 and body.status == "FAILED_PRECONDITION":
        # "User location is not supported", "free tier not available in your country": where and
        # how the deployment calls, not what it asked.
        return ModelOperatorTrouble("model_not_available", text)
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
    data, mime_type = read_image(response)
    return ModelImage(data=data, mime_type=mime_type, elapsed_ms=elapsed, usage=usage_of(response))


def _finish_reason(response: Any) -> str:
    candidate = response.candidates[0] if response.candidates else None
    reason = candidate.finish_reason if candidate is not None else None
    return str(getattr(reason, "value", reason) or "")


def _refused(response: Any) -> None:
    """Raise `safety_blocked` (permanent, the reason kept) when the prompt or the answer was refused."""
    feedback = response.prompt_feedback
    block = getattr(feedback.block_reason, "value", feedback.block_reason) if feedback is not None else None
    if block:
        raise ModelPermanent("safety_blocked", f"the prompt was blocked ({block})")
    reason = _finish_reason(response)
    if reason in _BLOCKED:
        raise ModelPermanent("safety_blocked", f"the model refused to answer this ({reason})")


def read_image(response: Any) -> tuple[bytes, str]:
    """The answer's final image and its MIME type (Gemini 3 image models answer JPEG). Parts marked
    `thought` are drafts of the model's thinking, never the result; of the rest the last image is
    the final one. An answer without one (`NO_IMAGE`, a `STOP` with only text, `IMAGE_OTHER`,
    `MALFORMED_FUNCTION_CALL`, a reason not known yet) is transient: the same request often draws
    on a second try; jobs/attempts.py gives up after a streak of them."""
    _refused(response)
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content and candidate.content.parts else []
    final = [p for p in parts if p.inline_data is not None and p.inline_data.data and not p.thought]
    if final:
        return final[-1].inline_data.data, final[-1].inline_data.mime_type or "image/png"
    said = " ".join(p.text for p in parts if p.text and not p.thought).strip()
    reason = _finish_reason(response) or "none"
    raise ModelTransient("no_image", f"the model answered without an image (finish reason {reason})"
                         + (f": {said[:200]}" if said else ""))  # fmt: skip


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
    _refused(response)
    if _finish_reason(response) == "MAX_TOKENS":
        # Cut off mid-answer (thinking can spend the budget): not garbage, and not for ever either.
        raise ModelTransient("model_max_tokens", "the answer was cut off at the output token limit")
    try:
        value = schema.model_validate_json(response.text or "")
    except ValidationError as exc:
        raise ModelTransient(
            "model_bad_response", f"the answer does not fit {schema.__name__}: {exc}"
        ) from None
    return ModelAnswer(value, elapsed, usage_of(response))


def _call(client: ModelClient, model: str, contents: list[Any], config: Any) -> tuple[Any, int]:
    """The generateContent call and its milliseconds; transport and API errors classified."""
    from google.genai import errors

    started = time.monotonic()
    try:
        with tracing.span("gemini.generate_content", model=model):
            response = client.client.models.generate_content(model=model, contents=contents, config=config)
    except errors.APIError as exc:
        status = exc.code or 0
        raise classify(status, f"{status} {exc.status}: {exc.message}", exc.details) from None
    except transport_errors() as exc:
        kind = "model_timeout" if "timeout" in type(exc).__name__.lower() else "model_unreachable"
        raise ModelTransient(kind, f"{type(exc).__name__}: {exc}") from None
    except ValueError as exc:  # a body that is not the JSON it claims to be
        raise ModelTransient("model_bad_response", f"unreadable model response: {exc}") from None
    return response, int((time.monotonic() - started) * 1000)


def usage_of(response: Any) -> dict[str, int]:
    """What the call is billed for, as integers: prompt and output tokens, thinking tokens (billed
    as output), cached prompt tokens, and each by modality where the answer says
    (`prompt_image_tokens`, `output_image_tokens`, ...)."""
    usage = response.usage_metadata
    if usage is None:
        return {"prompt_tokens": 0, "output_tokens": 0, "thinking_tokens": 0}
    found = {
        "prompt_tokens": usage.prompt_token_count or 0,
        "output_tokens": usage.candidates_token_count or 0,
        "thinking_tokens": usage.thoughts_token_count or 0,
    }
    if usage.cached_content_token_count:
        found["cached_tokens"] = usage.cached_content_token_count
    for side, details in (
        ("prompt", usage.prompt_tokens_details),
        ("output", usage.candidates_tokens_details),
    ):
        for detail in details or []:
            modality = str(getattr(detail.modality, "value", detail.modality) or "unspecified").lower()
            key = f"{side}_{modality}_tokens"
            found[key] = found.get(key, 0) + (detail.token_count or 0)
    return found


def billed_output_tokens(usage: dict[str, int]) -> int:
    """Output as billed: the answer's tokens and the model's thinking."""
    return int(usage.get("output_tokens", 0)) + int(usage.get("thinking_tokens", 0))
