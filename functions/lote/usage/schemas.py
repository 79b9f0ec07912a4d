"""The usage report's query and answer."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from lote.validation import RequestModel


def _instant(value: str | None) -> dt.datetime | None:
    """An RFC 3339 time, or a date (its midnight, UTC)."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an RFC 3339 time (2026-12-05T00:00:00Z) or a date (2026-12-05)") from None
    if parsed.tzinfo is None:
        if "T" in value:
            raise ValueError("must carry a time zone (Z or ±hh:mm)")
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


class RangeQuery(RequestModel):
    """A time range in query parameters."""

    from_: str | None = Field(
        None,
        alias="from",
        max_length=40,
        description="Start (inclusive); default 30 days (by hour: 1 day) before `to`.",
    )
    to: str | None = Field(None, max_length=40, description="End (exclusive); default now.")

    @field_validator("from_", "to")
    @classmethod
    def _is_instant(cls, value: str | None) -> str | None:
        _instant(value)
        return value

    def start(self) -> dt.datetime | None:
        """`from` as a time."""
        return _instant(self.from_)

    def end(self) -> dt.datetime | None:
        """`to` as a time."""
        return _instant(self.to)

    def bounds(self, default: dt.timedelta, max_days: int) -> tuple[dt.datetime, dt.datetime]:
        """[from, to): `to` defaults to now and `from` to `default` before it; 400 naming the field
        for a range that is empty, reversed or longer than `max_days`."""
        from lote import timeutil
        from lote.errors import InvalidRequest

        end = self.end() or timeutil.now()
        start = self.start() or end - default
        if start >= end:
            raise InvalidRequest("from must be before to", {"field": "from"})
        if end - start > dt.timedelta(days=max_days):
            raise InvalidRequest(f"at most {max_days} days at once", {"field": "to", "max_days": max_days})
        return start, end


class UsageQuery(RangeQuery):
    """GET /v1/account/usage's query parameters."""

    granularity: Literal["day", "hour"] = "day"
    group_by: Literal["preset", "tier", "model", "status"] | None = None
    format: Literal["json", "csv"] = "json"


class UsageRow(BaseModel):
    """One group's figures in one period (or over the whole range)."""

    group: str = Field(description="The group's value (a preset, tier, model or status), or `all`.")
    images: int = Field(description="Images that finished (succeeded, failed or canceled).")
    succeeded: int
    failed: int
    canceled: int
    reused: int = Field(description="Succeeded by reusing an identical earlier image (no model call).")
    charged: int = Field(description="Credits those images were charged.")
    refunded: int = Field(description="Credits given back: failed and canceled images, reuse discounts.")
    p50_ms: int | None = Field(None, description="Accept → done, median of succeeded images (within 10%).")
    p95_ms: int | None = Field(None, description="Accept → done, 95th percentile (within 10%).")


class UsagePeriod(BaseModel):
    """A UTC hour or day."""

    start: str
    rows: list[UsageRow]


class Usage(BaseModel):
    """GET /v1/account/usage: images finished, credits, failures and latency, by period and group."""

    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    granularity: str
    group_by: str | None
    periods: list[UsagePeriod] = Field(description="Periods in which something finished, oldest first.")
    totals: list[UsageRow] = Field(description="The whole range, by group.")
    failures_by_code: dict[str, int] = Field(description="Failed images by error code.")
    documents_read: int = Field(description="Rollup documents this answer read (its cost).")
