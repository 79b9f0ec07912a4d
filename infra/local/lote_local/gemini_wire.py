"""Gemini's REST shapes as the offline model reads and writes them: a generateContent request's
prompt and images, and a response with parts, a finish reason and usage."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any


def read_contents(
    request: dict[str, Any], files: Callable[[str], tuple[bytes, str] | None] | None = None
) -> tuple[str, list[bytes]]:
    """The prompt text and the input images of a generateContent request; `files` reads a part's
    `fileData` (a Files API upload: batch requests refer to their images so)."""
    contents = request["contents"]
    if isinstance(contents, dict):
        contents = [contents]
    texts: list[str] = []
    images: list[bytes] = []
    for content in contents:
        for part in content.get("parts", []):
            if "text" in part:
                texts.append(part["text"])
            elif "inlineData" in part:
                images.append(_b64decode(part["inlineData"]["data"]))
            elif "fileData" in part:
                found = files(part["fileData"]["fileUri"]) if files is not None else None
                if found is None:
                    raise ValueError(f"file {part['fileData']['fileUri']} not found")
                images.append(found[0])
    if not texts and not images:
        raise ValueError("contents has no text and no inline image")
    return "\n".join(texts), images


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64 (google-genai sends the latter), strictly validated."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


# Thinking tokens per output token of the text model's JSON answers (gemini-2.5-flash: 331 thinking
# for 177 output in the js-genai recording, tests/fixtures/gemini/devapi-200-text-json-schema-...),
# and a Gemini 3 image model's thinking per image (174 in pydantic-ai's recording).
TEXT_THINKING_PER_OUTPUT = 331 / 177
IMAGE_THINKING_GEMINI_3 = 174


def response(
    model: str, parts: list[dict[str, Any]], reason: str, prompt: str, images: list[bytes]
) -> dict[str, Any]:
    """A GenerateContentResponse with these parts, its finish reason and token counts shaped as
    Gemini reports them (by modality; thinking apart, billed as output)."""
    text_tokens, image_tokens = max(1, len(prompt) // 4), 258 * len(images)
    output_tokens = 1290 if parts else 0
    candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    prompt_details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        prompt_details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    usage: dict[str, Any] = {
        "promptTokenCount": text_tokens + image_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": text_tokens + image_tokens + output_tokens,
        "promptTokensDetails": prompt_details,
    }
    if output_tokens:
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": output_tokens}]
    if output_tokens and model.startswith("gemini-3"):
        usage["thoughtsTokenCount"] = IMAGE_THINKING_GEMINI_3
        usage["totalTokenCount"] += IMAGE_THINKING_GEMINI_3
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": secrets.token_urlsafe(12),
    }


def text_response(model: str, text: str, prompt: str, images: list[bytes]) -> dict[str, Any]:
    """A response whose one part is `text` (a JSON answer, or what passes for one)."""
    body = response(model, [{"text": text}], "STOP", prompt, images)
    usage = body["usageMetadata"]
    output = max(1, len(text) // 4)
    thinking = round(output * TEXT_THINKING_PER_OUTPUT)
    usage["candidatesTokenCount"] = output
    usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": output}]
    usage["thoughtsTokenCount"] = thinking
    usage["totalTokenCount"] = usage["promptTokenCount"] + output + thinking
    return body
