"""Deterministic stand-in images: a real picture derived from the prompt and the input images."""

from __future__ import annotations

import hashlib
import io
import random
from fractions import Fraction

from PIL import Image, ImageDraw, ImageOps

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


def output_size(
    aspect_ratio: str | None, long_edge: int, source: tuple[int, int] | None = None
) -> tuple[int, int]:
    """Width and height for an aspect ratio such as `16:9`, the long edge fixed; without one, the
    first input image's proportions (as Gemini keeps them), else square."""
    ratio = Fraction(1)
    if aspect_ratio:
        width, _, height = aspect_ratio.partition(":")
        ratio = Fraction(int(width), int(height))
    elif source is not None and source[0] > 0 and source[1] > 0:
        ratio = Fraction(source[0], source[1])
    if ratio >= 1:
        return long_edge, max(1, round(long_edge / ratio))
    return max(1, round(long_edge * ratio)), long_edge


def render(
    prompt: str,
    inputs: list[bytes],
    aspect_ratio: str | None,
    mime_type: str,
    long_edge: int,
    grain: int = 0,
) -> tuple[bytes, int, int]:
    """Encoded image bytes and their size; the same arguments always give the same bytes. `grain`
    (percent) blends in noise, so the image compresses like a photograph: at 1024 px a PNG is
    ~6 KiB without it and ~1.5 MB (Gemini's usual output) with 3."""
    digest = hashlib.sha256(prompt.encode())
    for data in inputs:
        digest.update(hashlib.sha256(data).digest())
    seed = digest.digest()
    tint = (seed[0], seed[1], seed[2])
    if inputs:
        with Image.open(io.BytesIO(inputs[0])) as source:
            size = output_size(aspect_ratio, long_edge, source.size)
            base = ImageOps.fit(source.convert("RGB"), size)
        image = Image.blend(base, Image.new("RGB", size, tint), 0.35)
    else:
        size = output_size(aspect_ratio, long_edge)
        image = Image.linear_gradient("L").resize(size).convert("RGB")
        image = Image.blend(image, Image.new("RGB", size, tint), 0.6)
    draw = ImageDraw.Draw(image)
    border = max(2, size[0] // 64)
    draw.rectangle((0, 0, size[0] - 1, size[1] - 1), outline=(seed[3], seed[4], seed[5]), width=border)
    draw.text((border * 2, border * 2), prompt[:60], fill=(255, 255, 255))
    if grain > 0:
        noise = random.Random(seed).randbytes(size[0] * size[1] * 3)  # noqa: S311 (deterministic, not a secret)
        image = Image.blend(image, Image.frombytes("RGB", size, noise), min(grain, 100) / 100)
    out = io.BytesIO()
    image.save(out, format=FORMATS[mime_type])
    return out.getvalue(), size[0], size[1]
