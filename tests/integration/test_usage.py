"""Usage analytics: the report's figures equal the jobs and the ledger, as JSON and as CSV, and bad
queries are refused naming the parameter."""

from __future__ import annotations

import csv
import io
import time

from google.cloud.firestore import FieldFilter

from lote.billing import ledger
from lote.jobs.store import JOBS
from lote.services import Services
from tests.integration.conftest import ADMIN_TOKEN


def _finished_batch(tenant, batch_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        batch = tenant.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] in ("completed", "canceled"):
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)


def test_usage_equals_the_jobs_and_the_ledger(tenant, services: Services):
    made = [tenant.post("/v1/generations", {"prompt": f"a lamp {n}", "reuse": False}).json()["id"]
            for n in range(3)]  # fmt: skip
    broken = tenant.post("/v1/generations", {"prompt": "broken [[fault=invalid]]"}).json()["id"]
    slow = tenant.post("/v1/generations", {"prompt": "slow [[latency=1500]]", "reuse": False}).json()["id"]
    tenant.wait(slow, {"running"})
    assert tenant.post(f"/v1/generations/{slow}/cancel").status_code == 200
    batch = tenant.post(
        "/v1/batches",
        {"items": [{"reference": "a", "prompt": "item a"}, {"reference": "b", "prompt": "item b"}]},
    ).json()
    for job_id in [*made, broken, slow]:
        tenant.wait(job_id)
    _finished_batch(tenant, batch["id"])

    db = services.firestore.db
    mine = db.collection(JOBS).where(filter=FieldFilter("tenant_id", "==", tenant.tenant_id))
    jobs = [j.to_dict() for j in mine.stream()]
    entries = [
        e.to_dict() for e in ledger.tenant_ref(db, tenant.tenant_id).collection(ledger.LEDGER).stream()
    ]
    by_status = tenant.get("/v1/account/usage", params={"group_by": "status"})
    assert by_status.status_code == 200, by_status.text
    report = by_status.json()
    totals = {row["group"]: row for row in report["totals"]}
    for status in ("succeeded", "failed", "canceled"):
        assert totals[status]["images"] == sum(1 for j in jobs if j["status"] == status)
    assert sum(row["images"] for row in totals.values()) == len(jobs) == 7
    charged = sum(row["charged"] for row in totals.values())
    refunded = sum(row["refunded"] for row in totals.values())
    assert (
        charged
        == sum(j["price"] for j in jobs)
        == -sum(e["delta"] for e in entries if e["reason"] == "debit")
    )
    assert refunded == sum(e["delta"] for e in entries if e["reason"] == "refund") > 0
    assert report["failures_by_code"] == {
        next(j for j in jobs if j["status"] == "failed")["error"]["code"]: 1
    }
    assert (
        totals["succeeded"]["p50_ms"] > 0 and totals["succeeded"]["p95_ms"] >= totals["succeeded"]["p50_ms"]
    )
    assert report["documents_read"] == 31 * 16  # 30 days back, the partial first day included

    by_tier = {
        r["group"]: r["images"] for r in tenant.get("/v1/account/usage?group_by=tier").json()["totals"]
    }
    assert by_tier == {"interactive": 5, "standard": 2}

    rows = list(csv.DictReader(io.StringIO(tenant.get("/v1/account/usage?group_by=status&format=csv").text)))
    assert sum(int(r["images"]) for r in rows) == 7
    assert sum(int(r["charged"]) for r in rows) == charged
    as_csv = tenant.get("/v1/account/usage", headers={"Accept": "text/csv"})
    assert as_csv.headers["Content-Type"].startswith("text/csv") and as_csv.text.startswith("period_start,")

    # The operator's view: credits sold and charged against what the images cost at list prices.
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    economics = tenant.http.get(f"{tenant.base}/v1/admin/tenants/{tenant.tenant_id}/economics", headers=admin)
    assert economics.status_code == 200, economics.text
    money = economics.json()
    assert money["credits"]["debit"] == charged and money["credits"]["refund"] == refunded
    assert money["credits"]["grant"] == 100_000 and money["credits"]["purchase"] == 0
    assert money["images"] == 7 and money["model_spend_usd"] > 0
    assert money["model_usd_per_credit_charged"] == round(money["model_spend_usd"] / (charged - refunded), 6)
    from lote.admin import cli as admin_cli

    told = admin_cli.run(["economics", "--tenant", tenant.tenant_id, "--days", "2"], services)
    assert (told["credits"], told["images"], told["model_spend_usd"]) == (
        money["credits"], money["images"], money["model_spend_usd"])  # fmt: skip


def test_usage_refuses_bad_queries_naming_the_parameter(tenant):
    for params, field in [
        ({"granularity": "week"}, "granularity"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-12-05T10:00:00"}, "from"),  # no time zone
        ({"from": "2026-12-05", "to": "2026-12-01"}, "from"),
        ({"granularity": "hour", "from": "2026-10-01", "to": "2026-12-01"}, "to"),
        ({"group_by": "color"}, "group_by"),
        ({"page": "2"}, "page"),
    ]:
        answer = tenant.get("/v1/account/usage", params=params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.json()["error"]["details"]["field"] == field, (params, answer.text)
