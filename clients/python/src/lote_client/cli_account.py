"""`lote usage` and `lote spend-controls`: what finished and what it cost, and the account's caps."""

from __future__ import annotations

from typing import Any

import click

from lote_client import _shared
from lote_client._cli_common import OK, client, command, emit
from lote_client.models import SpendControls, Usage, UsageRow

GROUPS = click.Choice(["preset", "tier", "model", "status"])


def _seconds(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f}s"


def _row(period: str, row: UsageRow) -> str:
    counts = f"{row.images:>7} {row.succeeded:>9} {row.failed:>6} {row.canceled:>8}"
    credits = f"{row.charged:>8} {row.refunded:>8}"
    return (
        f"{period:16} {row.group:24} {counts} {credits} {_seconds(row.p50_ms):>7} {_seconds(row.p95_ms):>7}"
    )


def _period(start: str, granularity: str) -> str:
    """A period's start as a person reads it: the day, or the day and the hour (UTC)."""
    return start[:10] if granularity == "day" else start[:16].replace("T", " ")


def usage_table(report: Usage) -> str:
    """The report for a terminal: a row per period and group, the totals, failures by code (credits
    charged and refunded; p50/p95 accept → done in seconds)."""
    head = (f"{'period':16} {'group':24} {'images':>7} {'succeeded':>9} {'failed':>6} {'canceled':>8} "
            f"{'charged':>8} {'refunded':>8} {'p50':>7} {'p95':>7}")  # fmt: skip
    lines = [head]
    for period in report.periods:
        lines += [_row(_period(period.start, report.granularity), row) for row in period.rows]
    lines += [_row("total", row) for row in report.totals]
    if not report.totals:
        lines.append(f"nothing finished from {report.from_} to {report.to}")
    if report.failures_by_code:
        codes = ", ".join(f"{code} {n}" for code, n in report.failures_by_code.items())
        lines.append(f"failures by code: {codes}")
    return "\n".join(lines)


@click.command("usage")
@click.option("--from", "start", help="Start: a date (2026-12-01) or an RFC 3339 time; default 30 days ago.")
@click.option("--to", "end", help="End (exclusive); default now.")
@click.option("--granularity", type=click.Choice(["day", "hour"]), default="day", show_default=True)
@click.option("--group-by", type=GROUPS, help="A row per preset, tier, model or status.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the server's CSV (one row per period and group).")
@command
def usage(obj: dict[str, Any], start: str | None, end: str | None, granularity: str, group_by: str | None,
          as_csv: bool) -> int:  # fmt: skip
    """What finished and what it cost: images, credits, failures and accept → done by period."""
    account = client(obj).account
    if as_csv:
        click.echo(
            account.usage_csv(start=start, end=end, granularity=granularity, group_by=group_by), nl=False
        )
        return OK
    report = account.usage(start=start, end=end, granularity=granularity, group_by=group_by)
    if obj["json"]:
        click.echo(report.model_dump_json(by_alias=True))
    else:
        click.echo(usage_table(report))
    return OK


class _Cap(click.ParamType):
    """A whole number of credits, or `none` to remove the control."""

    name = "credits|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or value is _shared.UNSET:
            return value
        if str(value).lower() == "none":
            return None
        try:
            number = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a whole number of credits or 'none'", param, ctx)
        if number < 0:
            self.fail("must be 0 or more", param, ctx)
        return number


class _Url(click.ParamType):
    name = "url|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return None if str(value).lower() == "none" else value


def controls_text(found: SpendControls) -> str:
    """The controls for a terminal."""

    def shown(value: int | None) -> str:
        return "none" if value is None else f"{value} credits"

    below = " (below it now)" if found.low_balance else ""
    return "\n".join([
        f"daily cap        {shown(found.daily_cap)} (charged today: {found.charged_today}; "
        f"resets {found.day_resets_at})",
        f"monthly cap      {shown(found.monthly_cap)} (charged this month: {found.charged_this_month}; "
        f"resets {found.month_resets_at})",
        f"low balance at   {shown(found.low_balance_threshold)}{below}",
        f"events go to     {found.webhook_url or 'nowhere (set --webhook-url)'}",
    ])  # fmt: skip


@click.command("spend-controls")
@click.option("--daily-cap", type=_Cap(), default=_shared.UNSET, help="Credits a UTC day, or none.")
@click.option("--monthly-cap", type=_Cap(), default=_shared.UNSET, help="Credits a UTC month, or none.")
@click.option("--low-balance", type=_Cap(), default=_shared.UNSET, help="Warn below this balance, or none.")
@click.option("--webhook-url", type=_Url(), default=_shared.UNSET, help="Where account events go, or none.")
@command
def spend_controls(
    obj: dict[str, Any], daily_cap: Any, monthly_cap: Any, low_balance: Any, webhook_url: Any
) -> int:
    """Show the spend caps and the low-balance threshold, setting the ones given first."""
    account = client(obj).account
    given = [daily_cap, monthly_cap, low_balance, webhook_url]
    if any(value is not _shared.UNSET for value in given):
        found = account.set_spend_controls(
            daily_cap=daily_cap,
            monthly_cap=monthly_cap,
            low_balance_threshold=low_balance,
            webhook_url=webhook_url,
        )
    else:
        found = account.spend_controls()
    emit(obj, found.model_dump(mode="json"), controls_text(found))
    return OK
