"""The Python clients' account calls and `lote usage` / `lote spend-controls` against a fake API
(httpx.MockTransport): what each call sends, what it reads back, the table, and the exit codes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from lote_client import AsyncLote, Lote, SpendCapReached, _cli_common, cli

BASE = "https://api.test"


def _row(group: str, **figures: Any) -> dict[str, Any]:
    counts = {"images": 0, "succeeded": 0, "failed": 0, "canceled": 0, "reused": 0, "charged": 0,
              "refunded": 0, "p50_ms": None, "p95_ms": None}  # fmt: skip
    return {"group": group, **counts, **figures}


SUCCEEDED = _row("succeeded", images=2, succeeded=2, charged=20, p50_ms=1234, p95_ms=5678)
FAILED = _row("failed", images=1, failed=1, charged=10, refunded=10)
REPORT = {
    "from": "2026-12-04T00:00:00Z", "to": "2026-12-06T00:00:00Z", "granularity": "day", "group_by": "status",
    "periods": [{"start": "2026-12-05T00:00:00Z", "rows": [SUCCEEDED, FAILED]}],
    "totals": [SUCCEEDED, FAILED], "failures_by_code": {"safety_blocked": 1}, "documents_read": 32,
    "added_later": "a newer server's field",
}  # fmt: skip
CSV = (
    "period_start,group,images,succeeded,failed,canceled,reused,charged,refunded,p50_ms,p95_ms\r\n"
    "2026-12-05T00:00:00Z,succeeded,2,2,0,0,0,20,0,1234,5678\r\n"
    "2026-12-05T00:00:00Z,failed,1,0,1,0,0,10,10,,\r\n"
)


def _instant(value: str) -> None:
    """The server's rule (usage/schemas.py): an RFC 3339 time with its zone, or a date."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None and "T" in value:
        raise ValueError(value)


class FakeAPI:
    """The account routes as the server answers them, keeping every request it was sent."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []
        self.controls: dict[str, Any] = {
            "daily_cap": 500, "monthly_cap": 9000, "low_balance_threshold": None, "webhook_url": None,
            "charged_today": 20, "charged_this_month": 30, "low_balance": False,
            "day_resets_at": "2026-12-06T00:00:00Z", "month_resets_at": "2027-01-01T00:00:00Z",
        }  # fmt: skip

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.path == "/v1/account/usage":
            for name in ("from", "to"):
                value = request.url.params.get(name)
                try:
                    if value is not None:
                        _instant(value)
                except ValueError:
                    message = (
                        f"{name}: must be an RFC 3339 time (2026-12-05T00:00:00Z) or a date (2026-12-05)"
                    )
                    return self.refuse(400, "invalid_request", message, {"field": name})
            if request.url.params.get("format") == "csv":
                return httpx.Response(200, text=CSV, headers={"Content-Type": "text/csv; charset=utf-8"})
            return httpx.Response(200, json={**REPORT, "granularity": request.url.params["granularity"]})
        if request.url.path == "/v1/account/spend-controls":
            if request.method == "PATCH":
                self.controls.update(json.loads(request.content))  # null removes a control
            return httpx.Response(200, json=self.controls)
        return self.refuse(404, "not_found", "no such route", {})

    @staticmethod
    def refuse(status: int, code: str, message: str, details: dict[str, Any]) -> httpx.Response:
        return httpx.Response(status, json={"error": {"code": code, "message": message, "details": details}})

    def last(self) -> httpx.Request:
        return self.seen[-1]


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def client(api: FakeAPI) -> Lote:
    return Lote("lote_sk_test", base_url=BASE, http=httpx.Client(transport=httpx.MockTransport(api.handle)))


def _query(request: httpx.Request) -> dict[str, str]:
    return dict(request.url.params)


def test_usage_sends_times_as_rfc3339_in_utc_and_dates_as_dates(api: FakeAPI, client: Lote):
    paris = dt.timezone(dt.timedelta(hours=1))
    report = client.account.usage(
        start=dt.datetime(2026, 12, 5, 10, 30, tzinfo=paris), end=dt.date(2026, 12, 6), group_by="status"
    )
    assert _query(api.last()) == {
        "from": "2026-12-05T09:30:00Z", "to": "2026-12-06", "granularity": "day", "group_by": "status"
    }  # fmt: skip
    assert report.from_ == "2026-12-04T00:00:00Z" and report.failures_by_code == {"safety_blocked": 1}
    assert [(row.group, row.images, row.p95_ms) for row in report.totals] == [
        ("succeeded", 2, 5678),
        ("failed", 1, None),
    ]
    assert report.model_extra == {"added_later": "a newer server's field"}  # kept, not refused

    client.account.usage(start=dt.datetime(2026, 12, 5, 10, 30), granularity="hour")  # naive: UTC
    assert _query(api.last()) == {"from": "2026-12-05T10:30:00Z", "granularity": "hour"}
    client.account.usage(start="2026-12-01", end="2026-12-02T00:00:00+02:00")  # strings as given
    assert _query(api.last()) == {
        "from": "2026-12-01",
        "to": "2026-12-02T00:00:00+02:00",
        "granularity": "day",
    }
    client.account.usage()  # the server's defaults: nothing but the granularity
    assert api.last().url.query == b"granularity=day"
    with pytest.raises(TypeError):
        client.account.usage(start=1733356800)


def test_usage_csv_is_the_servers_text_unchanged(api: FakeAPI, client: Lote):
    assert client.account.usage_csv(group_by="tier") == CSV  # \r\n and empty cells as written
    assert _query(api.last()) == {"granularity": "day", "group_by": "tier", "format": "csv"}


def test_spend_controls_send_only_what_is_passed_and_none_as_null(api: FakeAPI, client: Lote):
    assert client.account.spend_controls().daily_cap == 500 and api.last().method == "GET"
    changed = client.account.set_spend_controls(daily_cap=None, low_balance_threshold=100)
    assert api.last().method == "PATCH" and api.last().url.path == "/v1/account/spend-controls"
    assert json.loads(api.last().content) == {"daily_cap": None, "low_balance_threshold": 100}
    assert changed.daily_cap is None and changed.monthly_cap == 9000 and changed.low_balance_threshold == 100
    client.account.set_spend_controls(webhook_url="https://hooks.example.com/lote")
    assert json.loads(api.last().content) == {"webhook_url": "https://hooks.example.com/lote"}


def test_the_async_client_sends_the_same_requests(api: FakeAPI):
    async def run() -> tuple[int, str, int | None]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(api.handle))
        async with AsyncLote("lote_sk_test", base_url=BASE, http=http) as lote:
            report = await lote.account.usage(start=dt.date(2026, 12, 4), group_by="status")
            text = await lote.account.usage_csv(end=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))
            controls = await lote.account.set_spend_controls(monthly_cap=None)
            return sum(row.images for row in report.totals), text, controls.monthly_cap

    assert asyncio.run(run()) == (3, CSV, None)
    usage, as_csv, patch = api.seen
    assert _query(usage) == {"from": "2026-12-04", "granularity": "day", "group_by": "status"}
    assert _query(as_csv) == {"to": "2026-12-06T00:00:00Z", "granularity": "day", "format": "csv"}
    assert patch.method == "PATCH" and json.loads(patch.content) == {"monthly_cap": None}


def test_a_cap_reached_answer_is_raised_as_spend_cap_reached():
    details = {"period": "day", "cap": 5, "charged": 4, "required": 2, "resets_at": "2026-12-06T00:00:00Z"}

    def capped(_request: httpx.Request) -> httpx.Response:
        return FakeAPI.refuse(403, "spend_cap_reached", "the daily cap is reached", details)

    lote = Lote("lote_sk_test", base_url=BASE, http=httpx.Client(transport=httpx.MockTransport(capped)))
    with pytest.raises(SpendCapReached) as raised:
        lote.account.spend_controls()
    assert raised.value.status == 403 and raised.value.details == details


# The command line, with `lote`'s client talking to the same fake.


@pytest.fixture
def lote(api: FakeAPI, monkeypatch: pytest.MonkeyPatch):
    def make(api_key: str | None, base_url: str | None) -> Lote:
        return Lote(api_key, base_url=base_url, http=httpx.Client(transport=httpx.MockTransport(api.handle)))

    monkeypatch.setattr(_cli_common, "Lote", make)

    def run(*args: str) -> Result:
        env = {"LOTE_API_URL": BASE, "LOTE_API_KEY": "lote_sk_test"}
        return CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)

    return run


def test_lote_usage_prints_a_table_then_totals_and_failures_by_code(api: FakeAPI, lote):
    shown = lote("usage", "--from", "2026-12-04", "--to", "2026-12-06", "--group-by", "status")
    assert shown.exit_code == cli.OK, shown.output
    assert _query(api.last()) == {"from": "2026-12-04", "to": "2026-12-06", "granularity": "day",
                                  "group_by": "status"}  # fmt: skip
    assert [line.split() for line in shown.stdout.splitlines()] == [
        ["period", "group", "images", "succeeded", "failed", "canceled", "charged", "refunded", "p50", "p95"],
        ["2026-12-05", "succeeded", "2", "2", "0", "0", "20", "0", "1.2s", "5.7s"],
        ["2026-12-05", "failed", "1", "0", "1", "0", "10", "10", "-", "-"],
        ["total", "succeeded", "2", "2", "0", "0", "20", "0", "1.2s", "5.7s"],
        ["total", "failed", "1", "0", "1", "0", "10", "10", "-", "-"],
        ["failures", "by", "code:", "safety_blocked", "1"],
    ]
    by_hour = lote("usage", "--granularity", "hour")
    assert by_hour.stdout.splitlines()[1].startswith("2026-12-05 00:00 ")


def test_lote_usage_json_and_csv(api: FakeAPI, lote):
    as_json = lote("usage", "--json")
    assert as_json.exit_code == cli.OK and json.loads(as_json.stdout)["from"] == "2026-12-04T00:00:00Z"
    assert json.loads(as_json.stdout)["totals"] == REPORT["totals"]
    as_csv = lote("usage", "--csv", "--group-by", "preset")
    assert as_csv.exit_code == cli.OK and as_csv.stdout_bytes == CSV.encode()  # unchanged, no extra newline
    assert _query(api.last())["format"] == "csv"


def test_a_refused_range_exits_3_naming_the_field(api: FakeAPI, lote):
    refused = lote("usage", "--from", "2026-12-05T10:00", "--json")  # a time without its zone
    assert refused.exit_code == cli.REFUSED == 3
    error = json.loads(refused.stdout)["error"]
    assert (error["status"], error["code"], error["details"]) == (400, "invalid_request", {"field": "from"})
    as_text = lote("usage", "--to", "yesterday")
    assert as_text.exit_code == cli.REFUSED and as_text.stdout == ""
    assert "400 invalid_request: to: must be an RFC 3339 time" in as_text.stderr


def test_lote_spend_controls_shows_them_and_sets_only_those_given(api: FakeAPI, lote):
    shown = lote("spend-controls")
    assert shown.exit_code == cli.OK and [r.method for r in api.seen] == ["GET"]
    assert shown.stdout.splitlines() == [
        "daily cap        500 credits (charged today: 20; resets 2026-12-06T00:00:00Z)",
        "monthly cap      9000 credits (charged this month: 30; resets 2027-01-01T00:00:00Z)",
        "low balance at   none",
        "events go to     nowhere (set --webhook-url)",
    ]
    changed = lote("spend-controls", "--daily-cap", "none", "--low-balance", "100", "--json")
    assert changed.exit_code == cli.OK, changed.output
    assert api.last().method == "PATCH"
    assert json.loads(api.last().content) == {"daily_cap": None, "low_balance_threshold": 100}
    answer = json.loads(changed.stdout)
    assert (
        answer["daily_cap"] is None
        and answer["monthly_cap"] == 9000
        and answer["low_balance_threshold"] == 100
    )
    lote("spend-controls", "--webhook-url", "none", "--monthly-cap", "5")
    assert json.loads(api.last().content) == {"monthly_cap": 5, "webhook_url": None}


@pytest.mark.parametrize("value", ["-1", "five", "1.5"])
def test_a_cap_that_is_not_credits_or_none_is_a_usage_error_sent_nowhere(api: FakeAPI, lote, value: str):
    bad = lote("spend-controls", "--daily-cap", value)
    assert bad.exit_code == cli.USAGE and "--daily-cap" in bad.stderr and api.seen == []
