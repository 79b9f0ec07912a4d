"""Usage rollups' arithmetic (usage/rules.py): periods, shards, increments, merging, percentiles."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given
from hypothesis import strategies as st

from lote.usage import rules


def test_periods_cover_the_range_in_utc_hours_and_days():
    start = dt.datetime(2026, 12, 4, 22, 30, tzinfo=dt.UTC)
    end = dt.datetime(2026, 12, 5, 1, 0, tzinfo=dt.UTC)
    assert rules.periods(start, end, "hour") == ["2026-12-04T22", "2026-12-04T23", "2026-12-05T00"]
    assert rules.periods(start, end, "day") == ["2026-12-04", "2026-12-05"]
    assert rules.period_start("2026-12-05T13") == dt.datetime(2026, 12, 5, 13, tzinfo=dt.UTC)


def test_a_finished_image_counts_once_in_every_dimension():
    done = rules.Finished(status="failed", preset="declutter", tier="economy", model="gemini-2.5-flash-image",
                          price=3, refund=3, reused=False, accept_to_done_ms=1200, code="model_invalid")  # fmt: skip
    found = done.increments()
    assert found[("all", "images")] == 1 and found[("all", "failed")] == 1 and found[("all", "refunded")] == 3
    assert found[("model", "gemini-2_5-flash-image", "charged")] == 3  # no dots in a field name
    assert found[("codes", "model_invalid")] == 1
    assert not any(path[-2] == "lat" for path in found)  # latency is of succeeded images only


@given(st.lists(st.integers(1, 10_000_000), min_size=1, max_size=300))
def test_percentiles_from_the_histogram_are_within_ten_percent(values: list[int]):
    histogram: dict[str, int] = {}
    for ms in values:
        bucket = str(rules.latency_bucket(ms))
        histogram[bucket] = histogram.get(bucket, 0) + 1
    for q in (0.5, 0.95):
        exact = sorted(values)[math.ceil(q * len(values)) - 1]  # the nearest-rank quantile
        assert abs(rules.percentile(histogram, q) - exact) <= 0.1 * exact + 1  # type: ignore[operator]


def test_merging_shards_adds_every_count():
    into: dict = {}
    rules.merge(into, {"all": {"images": 2, "lat": {"40": 1}}, "codes": {"x": 1}})
    rules.merge(into, {"all": {"images": 3, "lat": {"40": 2, "41": 1}}})
    assert into == {"all": {"images": 5, "lat": {"40": 3, "41": 1}}, "codes": {"x": 1}}
    assert rules.groups(into, None)["all"]["images"] == 5
    assert rules.shard_of("gen_abc") == rules.shard_of("gen_abc") < rules.SHARDS
