"""The offline model server, driven by the real google-genai client, with every knob."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from google import genai
from google.genai import errors, types
from PIL import Image

from lote_local.stack import Stack

MODEL = "gemini-2.5-flash-image"


def client_for(stack: Stack, timeout_ms: int = 10_000) -> genai.Client:
    """The real client pointed at the offline server, SDK retries off as in production."""
    options = types.HttpOptions(
        base_url=stack.url(stack.config.model_port),
        timeout=timeout_ms,
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key="offline-test", http_options=options)


def generate(client: genai.Client, prompt: str, image: bytes | None = None, aspect: str | None = None):
    contents: list[object] = [prompt]
    if image is not None:
        contents.append(types.Part.from_bytes(data=image, mime_type="image/png"))
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio=aspect) if aspect else None
    )
    return client.models.generate_content(model=MODEL, contents=contents, config=config)


def image_of(response) -> Image.Image:
    part = next(p for p in response.candidates[0].content.parts if p.inline_data)
    return Image.open(io.BytesIO(part.inline_data.data))


def png(color: tuple[int, int, int], size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def test_generates_a_real_deterministic_image_with_usage(stack: Stack):
    client = client_for(stack)
    first = generate(client, "a red barn at dusk", aspect="16:9")
    second = generate(client, "a red barn at dusk", aspect="16:9")
    other = generate(client, "a blue barn at dawn", aspect="16:9")
    image = image_of(first)
    assert image.format == "PNG" and image.width > image.height
    assert image.width / image.height == pytest.approx(16 / 9, abs=0.01)
    assert first.candidates[0].finish_reason == types.FinishReason.STOP
    assert first.usage_metadata.total_token_count > 0
    data = [r.candidates[0].content.parts[0].inline_data.data for r in (first, second, other)]
    assert data[0] == data[1] != data[2]


def test_output_is_derived_from_the_input_image(stack: Stack):
    client = client_for(stack)
    red = image_of(generate(client, "stage this room", png((250, 0, 0))))
    blue = image_of(generate(client, "stage this room", png((0, 0, 250))))
    center = (red.width // 2, red.height // 2)
    assert red.convert("RGB").getpixel(center)[0] > blue.convert("RGB").getpixel(center)[0]


def test_without_an_aspect_ratio_the_input_image_keeps_its_proportions(stack: Stack):
    client = client_for(stack)
    tall = image_of(generate(client, "stage this room", png((10, 10, 10), size=(30, 60))))
    assert tall.height > tall.width and tall.height / tall.width == pytest.approx(2, abs=0.05)
    forced = image_of(generate(client, "stage this room", png((10, 10, 10), size=(30, 60)), aspect="16:9"))
    assert forced.width / forced.height == pytest.approx(16 / 9, abs=0.05)
    assert image_of(generate(client, "no input")).size[0] == image_of(generate(client, "no input")).size[1]


def test_latency_knob(stack: Stack):
    client = client_for(stack)
    started = time.monotonic()
    generate(client, "slow [[latency=400]]")
    assert time.monotonic() - started >= 0.4


def test_429_carries_resource_exhausted_and_retry_info(stack: Stack):
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(stack), "busy [[fault=429]]")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    details = caught.value.details["error"]["details"]
    assert details[0]["@type"].endswith("RetryInfo") and details[0]["retryDelay"].endswith("s")


@pytest.mark.parametrize(("fault", "status"), [("500", "INTERNAL"), ("503", "UNAVAILABLE")])
def test_server_errors(stack: Stack, fault: str, status: str):
    with pytest.raises(errors.ServerError) as caught:
        generate(client_for(stack), f"down [[fault={fault}]]")
    assert caught.value.code == int(fault) and caught.value.status == status


def test_invalid_argument(stack: Stack):
    with pytest.raises(errors.ClientError) as caught:
        generate(client_for(stack), "bad [[fault=invalid]]")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("fault", "reason"), [("safety", "IMAGE_SAFETY"), ("no_image", "NO_IMAGE")])
def test_blocked_answers_have_no_image(stack: Stack, fault: str, reason: str):
    response = generate(client_for(stack), f"blocked [[fault={fault}]]")
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason(reason)
    assert candidate.content is None or not candidate.content.parts


def test_a_response_slower_than_the_client_timeout(stack: Stack):
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timed? ?out") as caught:
        generate(client_for(stack, timeout_ms=500), "hang [[fault=timeout]]")
    assert time.monotonic() - started < 5
    assert not isinstance(caught.value, errors.APIError)


def test_malformed_json(stack: Stack):
    with pytest.raises(ValueError, match=r"(?i)json|expecting|unterminated|delimiter"):
        generate(client_for(stack), "garbled [[fault=malformed]]")


def test_times_knob_fails_the_first_n_identical_requests(stack: Stack):
    client = client_for(stack)
    prompt = f"flaky {time.time_ns()} [[fault=503 times=2]]"
    for _ in range(2):
        with pytest.raises(errors.ServerError):
            generate(client, prompt)
    assert image_of(generate(client, prompt)).format == "PNG"


def test_a_quota_refuses_what_is_over_it_as_gemini_does_and_can_change_while_running(stack: Stack):
    quota_url = stack.url(stack.config.model_port) + "/quota"
    client = client_for(stack)
    assert requests.post(quota_url, json={"rps": 1}, timeout=5).json() == {"rps": 1.0}
    try:

        def attempt(i: int) -> errors.ClientError | None:
            try:
                generate(client, f"quota {i}")
            except errors.ClientError as exc:
                return exc
            return None

        with ThreadPoolExecutor(5) as pool:  # all within a second: one passes, four are refused
            refusals = [r for r in pool.map(attempt, range(5)) if r is not None]
        assert len(refusals) == 4
        assert {(r.code, r.status) for r in refusals} == {(429, "RESOURCE_EXHAUSTED")}
        infos = [r.details["error"]["details"][0] for r in refusals]
        assert all(i["@type"].endswith("RetryInfo") and i["retryDelay"] == "1s" for i in infos)
        assert requests.get(quota_url, timeout=5).json() == {"rps": 1.0}
        assert requests.post(quota_url, json={"rps": -1}, timeout=5).status_code == 400
    finally:
        requests.post(quota_url, json={"rps": 0}, timeout=5)
    generate(client, "no quota any more")
