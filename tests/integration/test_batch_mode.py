"""Economy batches through Gemini's batch mode on the local stack (the offline model serves batch mode
and the Files API to the unmodified google-genai client): each item is one request line of a model
batch job, lands once as an online attempt would, and anything batch mode does not finish goes back
to online dispatch. Every scenario ends with its tenant's audit clean (the fixture)."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from PIL import Image

from lote.batchmode import store as mb_store
from lote.billing import pricing
from lote.jobs import store as job_store
from lote.services import Services
from lote_local.stack import Stack
from tests.integration.conftest import ADMIN_TOKEN, Tenant
from tests.integration.test_batches import all_items, wait_batch


def _model(stack: Stack, path: str, body: Any = None) -> dict[str, Any]:
    url = stack.url(stack.config.model_port) + path
    answer = requests.post(url, json=body, timeout=5) if body is not None else requests.get(url, timeout=5)
    return dict(answer.json())


def _photo() -> str:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 40, 200)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _counts(stack: Stack, run: str) -> tuple[int, int]:
    """(batch-mode lines, online image calls) of this test's run."""
    stats = _model(stack, "/stats")
    return int(stats.get(f"batch_lines:run={run}", 0)), int(stats.get(f"requests:run={run}", 0))


def _economy(tenant: Tenant, items: list[dict[str, Any]]) -> str:
    answer = tenant.post("/v1/batches", {"items": items, "priority": "economy"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_an_economy_batch_runs_in_batch_mode_and_is_charged_once(
    new_tenant: Callable[..., Tenant], stack: Stack, services: Services
):
    run = uuid.uuid4().hex[:8]
    tenant = new_tenant(credits=1000)
    photo = _photo()
    items = [{"reference": f"r{i}", "prompt": f"listing {i} [[run={run}]]", **({"images": [photo]} if i % 2 else {})}
             for i in range(30)]  # fmt: skip
    batch = wait_batch(tenant, _economy(tenant, items))
    assert batch["status"] == "completed" and batch["counts"]["succeeded"] == 30
    assert _counts(stack, run) == (30, 0)  # every image from batch mode, none online
    price = pricing.tiered(pricing.price(services.settings.default_model, None), "economy")
    assert 1000 - int(tenant.get("/v1/account").json()["balance"]) == 30 * price
    db = services.firestore.db
    jobs = [job_store.ref(db, item["id"]).get().to_dict() or {} for item in all_items(tenant, batch["id"])]
    assert {job["path"] for job in jobs} == {"batch_mode"} and all(job["attempts"] == 1 for job in jobs)
    model_batches = {str(job["model_batch"]["id"]) for job in jobs}
    for mb_id in model_batches:
        found = mb_store.get(db, mb_id) or {}
        assert found["ended"] and found["model_state"] == "JOB_STATE_SUCCEEDED"
    # Operators see it as economy's batch-mode spend, priced at half the online price.
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    view = tenant.get("/v1/admin/scheduler", headers=admin).json()["spend_by_tier"]
    economy = next(t for t in view if t["tier"] == "economy" and t["path"] == "batch_mode")
    assert economy["calls"] >= 30 and economy["estimated_usd"] > 0


def test_lines_that_fail_fail_as_online_and_missing_lines_go_back_online(
    new_tenant: Callable[..., Tenant], stack: Stack
):
    run = uuid.uuid4().hex[:8]
    tenant = new_tenant(credits=1000)
    kinds = ["", " [[fault=safety]]", " [[batch=missing]]"]
    items = [{"reference": f"r{i}", "prompt": f"item {i} [[run={run}]]{kinds[i % 3]}"} for i in range(12)]
    batch = wait_batch(tenant, _economy(tenant, items))
    assert batch["status"] == "completed"
    by_ref = {item["reference"]: item for item in all_items(tenant, batch["id"])}
    for i in range(12):
        item = by_ref[f"r{i}"]
        if i % 3 == 1:  # refused in its line: failed for good, refunded by the batch
            assert item["status"] == "failed" and item["error"]["code"] == "safety_blocked"
        else:  # landed, or made online after its line was missing
            assert item["status"] == "succeeded" and item["attempts"] == 1
    lines, online = _counts(stack, run)
    assert (lines, online) == (8, 4)  # the 4 missing lines were made online, once each


def test_a_model_batch_job_that_expires_sends_its_items_online(
    new_tenant: Callable[..., Tenant], stack: Stack
):
    run = uuid.uuid4().hex[:8]
    tenant = new_tenant(credits=1000)
    items = [{"reference": f"r{i}", "prompt": f"late {i} [[run={run} batch_end=expired]]"} for i in range(5)]
    batch = wait_batch(tenant, _economy(tenant, items))
    assert batch["status"] == "completed" and batch["counts"]["succeeded"] == 5
    assert _counts(stack, run) == (0, 5)
    assert all(item["attempts"] == 1 for item in all_items(tenant, batch["id"]))  # the expiry was not counted


@pytest.fixture
def slow_batch_mode(stack: Stack) -> Iterator[None]:
    before = _model(stack, "/batch_mode")["turnaround_s"]
    _model(stack, "/batch_mode", {"turnaround_s": 600})
    yield
    _model(stack, "/batch_mode", {"turnaround_s": before})


def test_canceling_a_batch_cancels_its_model_batch_job_and_refunds(
    new_tenant: Callable[..., Tenant], stack: Stack, services: Services, slow_batch_mode: None
):
    run = uuid.uuid4().hex[:8]
    tenant = new_tenant(credits=1000)
    items = [{"reference": f"r{i}", "prompt": f"never {i} [[run={run}]]"} for i in range(6)]
    batch_id = _economy(tenant, items)
    db = services.firestore.db

    def submitted(body: dict[str, Any]) -> bool:
        if body["counts"]["running"] != 6:
            return False
        job = job_store.ref(db, all_items(tenant, batch_id)[0]["id"]).get().to_dict() or {}
        found = mb_store.get(db, job["model_batch"]["id"]) or {}
        return found.get("state") == "submitted"

    wait_batch(tenant, batch_id, submitted, timeout=60)
    running = tenant.get(f"/v1/generations/{all_items(tenant, batch_id)[0]['id']}").json()
    assert running["status"] == "running" and running["model_batch"]["id"].startswith("mb_")
    assert tenant.post(f"/v1/batches/{batch_id}/cancel").status_code == 200
    batch = wait_batch(tenant, batch_id, lambda b: b["counts"]["canceled"] == 6, timeout=60)
    assert batch["status"] == "canceled"
    assert int(tenant.get("/v1/account").json()["balance"]) == 1000  # nothing made, nothing kept
    states = {b["metadata"]["state"] for b in _model(stack, "/v1beta/batches").get("operations", [])
              if b["metadata"]["displayName"].startswith("mb_")}  # fmt: skip
    assert "BATCH_STATE_CANCELLED" in states
    assert _counts(stack, run) == (0, 0)


def test_an_economy_item_identical_to_an_earlier_image_is_delivered_it_not_sent(
    new_tenant: Callable[..., Tenant], stack: Stack
):
    run = uuid.uuid4().hex[:8]
    tenant = new_tenant(credits=1000)
    photo = _photo()
    single = tenant.post(
        "/v1/generations", {"prompt": f"the same room [[run={run}]]", "images": [photo]}
    ).json()
    assert tenant.wait(single["id"])["status"] == "succeeded"
    items = [{"reference": f"r{i}", "prompt": f"the same room [[run={run}]]" if i < 2 else f"room {i} [[run={run}]]",
              "images": [photo]} for i in range(4)]  # fmt: skip
    batch = wait_batch(tenant, _economy(tenant, items))
    assert batch["counts"]["succeeded"] == 4
    reused = {i["reference"]: i.get("reused_from") for i in all_items(tenant, batch["id"])}
    assert reused == {"r0": single["id"], "r1": single["id"], "r2": None, "r3": None}
    assert _counts(stack, run) == (2, 1)  # two lines in batch mode, the single's one online call
