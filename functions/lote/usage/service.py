"""A tenant's usage report, from its rollups (usage/store.py): buckets × shards documents read,
never the jobs themselves."""

from __future__ import annotations

import csv
import datetime as dt
import io

from lote import timeutil
from lote.errors import InvalidRequest
from lote.services import Services
from lote.usage import rules, store
from lote.usage.schemas import Usage, UsagePeriod, UsageQuery, UsageRow

# The widest range each granularity answers in one request (what it reads: periods × SHARDS).
MAX_PERIODS = {"day": 400, "hour": 24 * 8}
DEFAULT_RANGE = {"day": dt.timedelta(days=30), "hour": dt.timedelta(days=1)}


def report(services: Services, tenant_id: str, query: UsageQuery) -> Usage:
    """Images finished in [from, to), by period and by `group_by`; 400 naming the field for a range
    that is empty, reversed or wider than its granularity allows."""
    start, end = query.bounds(DEFAULT_RANGE[query.granularity], max_days=MAX_PERIODS["day"])
    keys = rules.periods(start, end, query.granularity)
    if len(keys) > MAX_PERIODS[query.granularity]:
        raise InvalidRequest(
            f"at most {MAX_PERIODS[query.granularity]} {query.granularity}s at once; ask for a shorter range "
            "or a coarser granularity",
            {"field": "to", "periods": len(keys), "max": MAX_PERIODS[query.granularity]},
        )
    found = store.read(services.firestore.db, tenant_id, keys)
    periods, whole = [], {}  # type: ignore[var-annotated]
    for key in keys:
        if key not in found:
            continue
        rules.merge(whole, found[key])
        rows = [UsageRow(group=name, **row) for name, row in rules.groups(found[key], query.group_by).items()]
        periods.append(UsagePeriod(start=timeutil.iso(rules.period_start(key)) or "", rows=rows))
    totals = [UsageRow(group=name, **row) for name, row in rules.groups(whole, query.group_by).items()]
    return Usage.model_validate({
        "from": timeutil.iso(start), "to": timeutil.iso(end), "granularity": query.granularity,
        "group_by": query.group_by, "periods": periods, "totals": totals,
        "failures_by_code": rules.failures(found.values()), "documents_read": len(keys) * rules.SHARDS,
    })  # fmt: skip


CSV_COLUMNS = ("period_start", "group", "images", "succeeded", "failed", "canceled", "reused", "charged",
               "refunded", "p50_ms", "p95_ms")  # fmt: skip


def as_csv(usage: Usage) -> str:
    """The report's periods as CSV, one row per period and group (a spreadsheet's input)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for period in usage.periods:
        for row in period.rows:
            values = row.model_dump()
            writer.writerow(
                [period.start, *("" if values[c] is None else values[c] for c in CSV_COLUMNS[1:])]
            )
    return out.getvalue()
