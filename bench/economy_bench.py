"""Issue 26: economy through Gemini's batch mode, and never paying twice for the same image.

1. Model cost per 1,000 images by tier: the same plain item as a standard batch (online) and as an
   economy batch (batch mode) on the local stack; tokens as the offline model reports them (Gemini's
   shape: 1,290 output tokens an image) priced by dispatch/model_prices.json, batch mode at its
   published share (the admin view's spend by tier and path).
2. A 2,000-item economy batch through batch mode, the offline model's batch turnaround swept (5 s,
   30 s): items lost, charged twice, accept → all done; and the fallback when every model batch job
   expires (its items made online).
3. A CRM-like workload: 5,000 items in two batches (declutter preset, one photo each): the second
   batch repeats 25% of the first's photos, and 5% of each batch repeats a photo of its own batch.
   Model calls saved, model cost per 1,000 images delivered, accept → done for reused items.
Every run ends with the audit of its tenant clean.
"""

from __future__ import annotations

import base64
import io
import statistics
import time
import uuid
from typing import Any

import requests
from PIL import Image

from bench.common import Bench, running
from lote.audit import scan
from lote.billing import pricing
from lote.dispatch import spend
from lote.jobs import store as job_store

ADMIN = "bench-admin-token"


def _say(what: str) -> None:
    import sys

    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def _http(bench: Bench) -> tuple[str, requests.Session]:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {bench.api_key}"
    return bench.stack.url(bench.stack.config.api_port), http


def _model(bench: Bench, path: str, body: Any = None) -> dict[str, Any]:
    url = bench.stack.url(bench.stack.config.model_port) + path
    answer = requests.post(url, json=body, timeout=10) if body is not None else requests.get(url, timeout=10)
    return dict(answer.json())


def _wait(api: str, http: requests.Session, batch_id: str, timeout_s: float = 1800) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = http.get(f"{api}/v1/batches/{batch_id}", timeout=60).json()
        if body["status"] in ("completed", "canceled"):
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"batch {batch_id} not done after {timeout_s} s: {body}")
        time.sleep(0.5)


def _submit(api: str, http: requests.Session, items: list[dict[str, Any]], priority: str) -> str:
    answer = http.post(f"{api}/v1/batches", json={"items": items, "priority": priority}, timeout=300)
    if answer.status_code != 202:
        raise RuntimeError(answer.text)
    return str(answer.json()["id"])


def _items_of(api: str, http: requests.Session, batch_id: str) -> list[dict[str, Any]]:
    found, token = [], None
    while True:
        params: dict[str, Any] = {"page_size": 500, **({"page_token": token} if token else {})}
        page = http.get(f"{api}/v1/batches/{batch_id}/items", params=params, timeout=60).json()
        found += page["items"]
        token = page.get("next_page_token")
        if not token:
            return found


def _audit(bench: Bench) -> int:
    deadline = time.monotonic() + 60
    while True:
        report = scan.audit(bench.services, bench.tenant_id)
        if report.ok or time.monotonic() > deadline:
            return len(report.violations)
        time.sleep(1)


def cost_by_tier(items: int = 100) -> dict[str, float]:
    """$ per 1,000 images of each tier's path, from the admin view's spend by tier."""
    with running(admin_token=ADMIN) as bench:
        api, http = _http(bench)
        for priority in ("standard", "economy"):
            batch = [{"reference": f"r{i}", "prompt": f"{priority} room {i}"} for i in range(items)]
            _wait(api, http, _submit(api, http, batch, priority))
        view = http.get(f"{api}/v1/admin/scheduler", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        spent = {(t["tier"], t["path"]): t for t in view.json()["spend_by_tier"]}
        found = {
            f"{tier} ({path})": 1000 * row["estimated_usd"] / row["calls"]
            for (tier, path), row in spent.items()
        }
        found["audit_violations"] = _audit(bench)
        return found


def large_economy(items: int = 2000, turnarounds: tuple[float, ...] = (5.0, 30.0)) -> list[dict[str, Any]]:
    """A 2,000-item economy batch per turnaround, then one whose model batch jobs all expire."""
    rows = []
    for turnaround in (*turnarounds, None):
        with running() as bench:
            api, http = _http(bench)
            _model(bench, "/batch_mode", {"turnaround_s": turnaround or 5.0})
            run = uuid.uuid4().hex[:8]
            ending = " batch_end=expired" if turnaround is None else ""
            batch = [
                {"reference": f"r{i}", "prompt": f"listing {i} [[run={run}{ending}]]"} for i in range(items)
            ]
            before = int(http.get(f"{api}/v1/account", timeout=30).json()["balance"])
            started = time.perf_counter()
            done = _wait(api, http, _submit(api, http, batch, "economy"))
            took = time.perf_counter() - started
            listed = _items_of(api, http, done["id"])
            price = pricing.tiered(pricing.price(bench.services.settings.default_model, None), "economy")
            spent = before - int(http.get(f"{api}/v1/account", timeout=30).json()["balance"])
            stats = _model(bench, "/stats")
            db = bench.services.firestore.db
            outputs = sum(1 for i in listed if i.get("output"))
            attempts = [int(i["attempts"]) for i in listed]
            rows.append({
                "turnaround_s": turnaround, "expired": turnaround is None, "items": items,
                "succeeded": done["counts"]["succeeded"], "lost": items - len(listed) + sum(
                    1 for i in listed if i["status"] not in ("succeeded", "failed", "canceled")),
                "charged_twice": max(0, spent - items * price) // max(1, price), "outputs": outputs,
                "max_attempts": max(attempts), "accept_to_done_s": round(took, 1),
                "model_batches": int(stats.get("batches_created", 0)),
                "batch_lines": int(stats.get(f"batch_lines:run={run}", 0)),
                "online_calls": int(stats.get(f"requests:run={run}", 0)),
                "paths": sorted({str((job_store.ref(db, i["id"]).get().to_dict() or {}).get("path"))
                                 for i in listed[:50]}),
                "audit_violations": _audit(bench),
            })  # fmt: skip
            _say(f"economy batch, turnaround {turnaround}: {rows[-1]}")
    return rows


def _photo(n: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (48, 36), (n % 256, (n // 256) % 256, 200)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def crm(items: int = 5000, repeat_earlier: float = 0.25, repeat_within: float = 0.05) -> dict[str, Any]:
    """Two batches of items/2: photos repeated across and within them; what reuse saved."""
    half = items // 2
    with running() as bench:
        api, http = _http(bench)
        run = uuid.uuid4().hex[:8]

        def item(i: int, photo: int) -> dict[str, Any]:
            return {"reference": f"r{i}", "preset": "declutter", "params": {"room_type": "living room"},
                    "verify": False, "images": [_photo(photo)], "metadata": {"run": run}}  # fmt: skip

        # First batch: photos 0..half-1, the last 5% repeating earlier photos of the same batch.
        first = [item(i, i if i < half * (1 - repeat_within) else i % 97) for i in range(half)]
        # Second: 25% repeat the first batch's photos, 5% its own, the rest new.
        earlier, within = int(half * repeat_earlier), int(half * repeat_within)
        second = [item(i, i * 7 % int(half * (1 - repeat_within))) if i < earlier
                  else item(i, half + i - earlier - (i % 53 if i >= half - within else 0)) for i in range(half)]  # fmt: skip
        stamps = []
        for batch in (first, second):
            started = time.perf_counter()
            batch_id = _wait(api, http, _submit(api, http, batch, "standard"))["id"]
            stamps.append((batch_id, time.perf_counter() - started))
        listed = [i for batch_id, _ in stamps for i in _items_of(api, http, batch_id)]
        db = bench.services.firestore.db
        reused = [i for i in listed if i.get("reused_from")]
        docs = [job_store.ref(db, i["id"]).get().to_dict() or {} for i in reused[:300]]
        waits = [(d["finished_at"] - d["created_at"]).total_seconds() for d in docs if d.get("finished_at")]
        made = [job_store.ref(db, i["id"]).get().to_dict() or {} for i in listed if not i.get("reused_from")][
            :300
        ]
        made_waits = [
            (d["finished_at"] - d["created_at"]).total_seconds() for d in made if d.get("finished_at")
        ]
        calls = int(_model(bench, "/stats").get("requests", 0))
        # What the made images cost as their jobs recorded it (reused ones called no model).
        cents = 0.0
        refs = [job_store.ref(db, i["id"]) for i in listed]
        for start in range(0, len(refs), 500):
            for snapshot in db.get_all(refs[start : start + 500]):
                job = snapshot.to_dict() or {}
                for model, counts in spend.by_model(str(job.get("model")), job.get("usage") or {}).items():
                    cents += spend.cents(model, counts) or 0.0
        made_images = max(1, len(listed) - len(reused))
        return {
            "items": len(listed), "succeeded": sum(1 for i in listed if i["status"] == "succeeded"),
            "reused": len(reused), "model_calls": calls, "calls_saved": len(listed) - calls,
            "cost_per_1000_delivered_usd": round(10 * cents / max(1, len(listed)), 2),
            "cost_per_1000_without_reuse_usd": round(10 * cents / made_images, 2),
            "reused_accept_to_done_p50_s": round(statistics.median(waits), 2) if waits else None,
            "made_accept_to_done_p50_s": round(statistics.median(made_waits), 2) if made_waits else None,
            "batch_s": [round(s, 1) for _, s in stamps], "audit_violations": _audit(bench),
        }  # fmt: skip


def run() -> str:
    """The section of bench/RESULTS.md."""
    _say("economy: cost by tier")
    costs = cost_by_tier()
    _say(f"cost by tier: {costs}")
    _say("economy: 2,000 items through batch mode")
    large = large_economy()
    _say("economy: CRM workload with repeats")
    reuse = crm()
    _say(f"crm: {reuse}")
    lines = ["## Economy: batch mode and reuse (issue 26)", ""]
    lines.append("Model cost per 1,000 images by tier and path (the same plain item, 100 each; tokens as reported, "
                 "priced by dispatch/model_prices.json, batch mode at its published 50%):")  # fmt: skip
    lines.append("")
    lines += [f"- {name}: ${value:.2f}" for name, value in costs.items() if name != "audit_violations"]
    lines.append(f"- audit violations: {costs['audit_violations']}")
    lines += ["", "2,000-item economy batches through batch mode (50 requests a model batch job, at most 20 in "
              "flight; the offline model's batch turnaround as set):", "",
              "| turnaround | model batch jobs | succeeded | lost | charged twice | max attempts | batch lines | "
              "online calls | accept → all done | audit |", "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in large:
        label = "every job expires" if row["expired"] else f"{row['turnaround_s']:.0f} s"
        lines.append(f"| {label} | {row['model_batches']} | {row['succeeded']} | {row['lost']} | {row['charged_twice']} "
                     f"| {row['max_attempts']} | {row['batch_lines']} | {row['online_calls']} | "
                     f"{row['accept_to_done_s']} s | {row['audit_violations']} |")  # fmt: skip
    lines += ["", "CRM-like workload (two batches of 2,500 declutter items, one photo each; the second repeats 25% of "
              "the first's photos, each repeats 5% of its own):", ""]  # fmt: skip
    lines += [f"- {key}: {value}" for key, value in reuse.items()]
    return "\n".join(lines) + "\n"
