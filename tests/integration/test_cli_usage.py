"""`lote usage` and `lote spend-controls` against the local stack, and the clients' account calls."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io

from lote_client import AsyncLote, Lote, cli
from tests.integration.conftest import Tenant
from tests.integration.test_cli import _json, lote


def test_usage_and_spend_controls_from_the_command_line_and_the_clients(tenant: Tenant):
    made = [
        tenant.post("/v1/generations", {"prompt": f"a chair {n}", "reuse": False}).json()["id"]
        for n in range(2)
    ]
    for job_id in made:
        assert tenant.wait(job_id)["status"] == "succeeded"
    entries = tenant.get("/v1/account/ledger").json()["entries"]
    price = -sum(e["delta"] for e in entries if e["reason"] == "debit")

    by_status = lote(tenant, "usage", "--group-by", "status", "--json")
    assert by_status.exit_code == 0, by_status.output
    totals = {row["group"]: row for row in _json(by_status)["totals"]}
    assert totals["succeeded"]["images"] == 2 and totals["succeeded"]["charged"] == price
    assert sum(row["images"] for row in totals.values()) == 2  # nothing else finished
    table = lote(tenant, "usage", "--group-by", "status")
    assert "succeeded" in table.stdout and table.stdout.splitlines()[0].split()[:3] == [
        "period",
        "group",
        "images",
    ]
    as_csv = lote(tenant, "usage", "--csv")
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.splitlines()[0] == (
        "period_start,group,images,succeeded,failed,canceled,reused,charged,refunded,p50_ms,p95_ms"
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows and sum(int(r["images"]) for r in rows) == 2

    refused = lote(tenant, "usage", "--from", "2026-13-01", "--json")
    assert refused.exit_code == cli.REFUSED and _json(refused)["error"]["details"]["field"] == "from"

    capped = lote(tenant, "spend-controls", "--daily-cap", "5", "--json")
    assert capped.exit_code == 0, capped.output
    assert _json(capped)["daily_cap"] == 5 and _json(capped)["charged_today"] == price
    shown = lote(tenant, "spend-controls")
    assert shown.stdout.startswith("daily cap        5 credits")
    removed = _json(lote(tenant, "spend-controls", "--daily-cap", "none", "--json"))
    assert removed["daily_cap"] is None and removed["charged_today"] == price

    with Lote(tenant.api_key, base_url=tenant.base) as client:
        today = dt.datetime.now(dt.UTC).date()
        report = client.account.usage(start=today, group_by="tier")
        assert [(row.group, row.images) for row in report.totals] == [("interactive", 2)]
        assert client.account.set_spend_controls(monthly_cap=100).monthly_cap == 100
        assert client.account.spend_controls().daily_cap is None  # left as it was

    async def from_async() -> int:
        async with AsyncLote(tenant.api_key, base_url=tenant.base) as client:
            return sum(row.images for row in (await client.account.usage()).totals)

    assert asyncio.run(from_async()) == 2
