"""Issue 27: what a usage report costs at scale. One tenant finishing 1,000,000 images in 30 days
(its rollups written as the commits that end its jobs would have written them, shard by job id),
then GET /v1/account/usage over the local stack: documents read per request (the answer says; it
is what Firestore bills), the answer's size and time, for the ranges partners ask for. Compared
with what reading the jobs themselves would cost."""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from typing import Any

import requests

from bench.common import running
from bench.costs import PRICE
from lote.usage import rules, store

IMAGES = 1_000_000
DAYS = 30
PRESETS = ["declutter", "virtual-staging", "twilight", "sky-replace", "enhance", "none"]
TIERS = ["interactive", "express", "standard", "economy"]
MODELS = ["gemini-2.5-flash-image", "gemini-3-pro-image-preview"]
KINDS = 400  # distinct (preset, tier, model, status, latency) combinations drawn from


def _say(what: str) -> None:
    import sys

    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def _kinds(rng: random.Random) -> list[dict[str, Any]]:
    """Rollup increments of the kinds of images a CRM partner's month holds."""
    found = []
    for _ in range(KINDS):
        status = rng.choices(["succeeded", "failed", "canceled"], [95, 4, 1])[0]
        done = rules.Finished(
            status=status, preset=rng.choice(PRESETS), tier=rng.choices(TIERS, [30, 10, 40, 20])[0],
            model=rng.choices(MODELS, [85, 15])[0], price=rng.choice([1, 2, 3]), refund=0,
            reused=status == "succeeded" and rng.random() < 0.15,
            accept_to_done_ms=int(rng.lognormvariate(10.5, 1.2)),
            code=rng.choice(["model_invalid", "model_blocked", "input_unreadable"]) if status == "failed" else None,
            model_micros=39_000,
        )  # fmt: skip
        nested: dict[str, Any] = {}
        for path, value in done.increments().items():
            node = nested
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = value
        found.append(nested)
    return found


def _scaled(doc: dict[str, Any], times: int) -> dict[str, Any]:
    return {k: _scaled(v, times) if isinstance(v, dict) else v * times for k, v in doc.items()}


def seed(db: Any, tenant_id: str, now: dt.datetime) -> int:
    """The month's rollups, hour and day documents, in one bulk write; returns how many."""
    rng = random.Random(27)
    kinds = _kinds(rng)
    start = rules.period_start(rules.period_key(now, "day")) - dt.timedelta(days=DAYS - 1)
    hours = rules.periods(start, start + dt.timedelta(days=DAYS), "hour")
    per_hour = IMAGES // len(hours)
    days: dict[tuple[str, int], dict[str, Any]] = {}
    writer = db.bulk_writer()
    written = 0
    for hour in hours:
        for shard in range(rules.SHARDS):
            doc: dict[str, Any] = {}
            counts: dict[int, int] = {}
            for _ in range(per_hour // rules.SHARDS):
                pick = rng.randrange(KINDS)
                counts[pick] = counts.get(pick, 0) + 1
            for pick, times in counts.items():
                rules.merge(doc, _scaled(kinds[pick], times))
            rules.merge(days.setdefault((hour[:10], shard), {}), doc)
            writer.set(store.ref(db, tenant_id, hour, shard), {"tenant_id": tenant_id, "period": hour, **doc})
            written += 1
    for (day, shard), doc in days.items():
        writer.set(store.ref(db, tenant_id, day, shard), {"tenant_id": tenant_id, "period": day, **doc})
        written += 1
    writer.close()
    return written


QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("30 days by day", {}),
    ("30 days by day, by status", {"group_by": "status"}),
    ("30 days by day, by preset", {"group_by": "preset"}),
    ("7 days by hour, by tier", {"granularity": "hour", "group_by": "tier", "days": 7}),
    ("1 day by hour", {"granularity": "hour", "days": 1}),
    ("30 days by day as CSV, by preset", {"group_by": "preset", "format": "csv"}),
]


def run() -> str:
    with running() as bench:
        api = bench.stack.url(bench.stack.config.api_port)
        now = dt.datetime.now(dt.UTC)
        _say("seeding a month of rollups for 1,000,000 images")
        started = time.perf_counter()
        documents = seed(bench.services.firestore.db, bench.tenant_id, now)
        seeded_s = time.perf_counter() - started
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {bench.api_key}"
        rows = []
        for name, query in QUERIES:
            params = {k: v for k, v in query.items() if k != "days"}
            if "days" in query:
                params["from"] = (
                    (now - dt.timedelta(days=int(query["days"]))).isoformat().replace("+00:00", "Z")
                )
            timings, size, read, images = [], 0, 0, 0
            for attempt in range(6):
                began = time.perf_counter()
                answer = http.get(f"{api}/v1/account/usage", params=params, timeout=120)
                elapsed = (time.perf_counter() - began) * 1000
                assert answer.status_code == 200, answer.text
                if attempt:  # the first warms the instance
                    timings.append(elapsed)
                size = len(answer.content)
            if query.get("format") != "csv":
                body = answer.json()
                read = body["documents_read"]
                images = sum(row["images"] for row in body["totals"])
            else:
                read = len(rules.periods(now - dt.timedelta(days=30), now, "day")) * rules.SHARDS
                images = sum(int(line.split(",")[2]) for line in answer.text.splitlines()[1:])
            rows.append((name, read, images, size, statistics.median(timings)))
    lines = [
        "## Usage analytics: reads per report at 1M images a month (issue 27)",
        "",
        f"One tenant with {IMAGES:,} images a month ({rows[0][2]:,} seeded: evenly over {DAYS * 24} hours "
        f"and {rules.SHARDS} shards) finished over {DAYS} days: its hour and day rollups "
        f"({documents:,} documents, {rules.SHARDS} shards a period) seeded as the commits ending its jobs "
        f"write them ({seeded_s:.0f} s), then each report asked 6 times (the first warms up; median of 5) "
        "through the local stack's API on the Firestore emulator.",
        "",
        "| report | documents read | images counted | answer bytes | answer ms | read cost |",
        "|---|---|---|---|---|---|",
    ]
    for name, read, images, size, ms in rows:
        lines.append(
            f"| {name} | {read:,} | {images:,} | {size:,} | {ms:.0f} | ${read * PRICE['read']:.5f} |"
        )
    lines += [
        "",
        f"Reading the month's jobs instead would be {IMAGES:,} document reads (${IMAGES * PRICE['read']:.2f}) "
        "per report; count() aggregations per period and group would bill about one read per 1,000 "
        "index entries but cannot give percentiles. Writing the rollups costs 2 more document writes per "
        f"image (hour and day): ${2 * IMAGES * PRICE['write']:.2f} per 1,000,000 images, in the commit "
        "that ends the job (increments: nothing read). A tenant finishing 50 images/s writes each "
        f"shard of its current hour and day about {50 / rules.SHARDS:.1f} times a second.",
        "",
    ]
    return "\n".join(lines)
