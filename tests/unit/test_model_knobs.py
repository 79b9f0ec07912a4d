"""The offline model's knob markers and image sizes."""

from __future__ import annotations

import pytest

from lote_local.imaging import output_size, render
from lote_local.model_server import parse_knobs


def test_markers_parse_into_knobs():
    assert parse_knobs("a cat [[fault=503 times=2]] on a mat [[latency=100]]") == {
        "fault": "503", "times": "2", "latency": "100",
    }  # fmt: skip
    assert parse_knobs("no knobs here") == {}


@pytest.mark.parametrize(
    ("ratio", "size"), [("1:1", (512, 512)), ("16:9", (512, 288)), ("9:16", (288, 512)), (None, (512, 512))]
)
def test_output_size_keeps_the_long_edge(ratio, size):
    assert output_size(ratio, 512) == size


@pytest.mark.parametrize("mime", ["image/png", "image/jpeg", "image/webp"])
def test_render_is_deterministic_in_every_format(mime: str):
    first = render("a house", [], "4:3", mime, 64)
    assert first == render("a house", [], "4:3", mime, 64)
    assert first[1:] == (64, 48)


def test_grain_makes_a_deterministic_image_that_compresses_like_a_photo():
    plain = render("a house", [], None, "image/png", 1024)[0]
    grainy = render("a house", [], None, "image/png", 1024, grain=3)
    assert grainy == render("a house", [], None, "image/png", 1024, grain=3)
    assert len(plain) < 50_000 and 1_000_000 < len(grainy[0]) < 2_500_000  # Gemini's outputs are ~1.5 MB
