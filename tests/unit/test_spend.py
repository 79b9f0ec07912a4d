"""Model spend as Gemini bills it: tokens by model per finished job, summed by day, priced."""

from __future__ import annotations

import datetime as dt

from lote.dispatch import spend


def test_a_plain_job_and_a_pipeline_job_become_tokens_by_model():
    plain = {"prompt_tokens": 300, "output_tokens": 1290, "thinking_tokens": 174, "output_image_tokens": 1290}
    assert spend.by_model("gemini-3-pro-image-preview", plain) == {
        "gemini-3-pro-image-preview": {
            "calls": 1,
            "prompt_tokens": 300,
            "output_tokens": 1290,
            "thinking_tokens": 174,
        }
    }
    pipeline = {
        "analyze": {"model": "gemini-2.5-flash", "calls": 1, "ms": 900, "prompt_tokens": 270, "output_tokens": 40,
                    "thinking_tokens": 75},
        "generate": {"model": "gemini-2.5-flash-image", "calls": 2, "ms": 9000, "prompt_tokens": 600,
                     "output_tokens": 2580, "thinking_tokens": 0},
        "verify": {"model": "gemini-2.5-flash", "calls": 2, "ms": 1800, "prompt_tokens": 1040, "output_tokens": 80,
                   "thinking_tokens": 150},
    }  # fmt: skip
    assert spend.by_model("gemini-2.5-flash-image", pipeline) == {
        "gemini-2.5-flash": {"calls": 3, "prompt_tokens": 1310, "output_tokens": 120, "thinking_tokens": 225},
        "gemini-2.5-flash-image": {
            "calls": 2,
            "prompt_tokens": 600,
            "output_tokens": 2580,
            "thinking_tokens": 0,
        },
    }


def test_the_days_add_up_and_only_the_last_eight_are_kept():
    one = {"m": {"calls": 1, "prompt_tokens": 10, "output_tokens": 20, "thinking_tokens": 5}}
    start = dt.datetime(2026, 12, 1, 23, 59, tzinfo=dt.UTC)
    days: dict = {}
    for hours in range(0, 24 * 10, 12):
        days = spend.by_day(days, one, start + dt.timedelta(hours=hours))
    assert len(days) == spend.KEPT_DAYS and min(days) == "2026-12-04" and max(days) == "2026-12-11"
    assert days["2026-12-05"]["m"] == {
        "calls": 2,
        "prompt_tokens": 20,
        "output_tokens": 40,
        "thinking_tokens": 10,
    }


def test_thinking_is_priced_as_output():
    counts = {"calls": 1, "prompt_tokens": 1_000_000, "output_tokens": 0, "thinking_tokens": 1_000_000}
    price = spend.prices()["gemini-2.5-flash"]
    assert spend.cents("gemini-2.5-flash", counts) == price["input"] + price["output"]
    assert spend.cents("a-model-without-a-price", counts) is None
