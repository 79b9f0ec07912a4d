"""Never paying twice for the same image: an identical request of the same tenant is delivered the
first one's image, under its own URL, without a model call; identical requests in flight together
wait for the first; `reuse: false` and another tenant get their own."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests
from PIL import Image

from lote.billing import pricing
from lote.services import Services
from lote_local.stack import Stack
from tests.integration.conftest import Tenant


def _photo(color: tuple[int, int, int]) -> str:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _model_calls(stack: Stack, run: str) -> int:
    stats = requests.get(stack.url(stack.config.model_port) + "/stats", timeout=5).json()
    return int(stats.get(f"requests:run={run}", 0))


def _balance(tenant: Tenant) -> int:
    return int(tenant.get("/v1/account").json()["balance"])


def test_an_identical_request_gets_the_first_image_free_and_a_fresh_one_when_asked(
    new_tenant: Callable[..., Tenant], stack: Stack
):
    run = uuid.uuid4().hex[:8]
    tenant = new_tenant(credits=100)
    body = {"prompt": f"a quiet harbor [[run={run}]]", "images": [_photo((10, 120, 200))]}
    first = tenant.wait(tenant.post("/v1/generations", body).json()["id"])
    assert first["status"] == "succeeded" and first.get("reused_from") is None
    price = 100 - _balance(tenant)
    # The same photo sent again (its own upload, the same bytes) with the same prompt.
    second = tenant.wait(tenant.post("/v1/generations", body).json()["id"])
    assert second["status"] == "succeeded" and second.get("reused_from") == first["id"]
    assert second["output"]["sha256"] == first["output"]["sha256"]
    assert second["output"]["url"] != first["output"]["url"]  # its own object and signed URL
    image = requests.get(second["output"]["url"], timeout=10).content
    assert len(image) == second["output"]["bytes"] and second["model_ms"] == 0
    assert _model_calls(stack, run) == 1
    assert _balance(tenant) == 100 - price  # reuse_percent 0: charged at acceptance, given back
    # A fresh image when asked; and any difference (the aspect ratio) is another request.
    fresh = tenant.wait(tenant.post("/v1/generations", {**body, "reuse": False}).json()["id"])
    wider = tenant.wait(tenant.post("/v1/generations", {**body, "aspect_ratio": "16:9"}).json()["id"])
    assert fresh.get("reused_from") is None and wider.get("reused_from") is None
    assert _model_calls(stack, run) == 3
    assert _balance(tenant) == 100 - 3 * price


def test_tenants_never_share_an_image(new_tenant: Callable[..., Tenant], stack: Stack):
    run = uuid.uuid4().hex[:8]
    body = {"prompt": f"a red door [[run={run}]]"}
    one, other = new_tenant(), new_tenant()
    first = one.wait(one.post("/v1/generations", body).json()["id"])
    theirs = other.wait(other.post("/v1/generations", body).json()["id"])
    assert first["status"] == theirs["status"] == "succeeded" and theirs.get("reused_from") is None
    assert _model_calls(stack, run) == 2


def _batch_done(tenant: Tenant, batch_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = tenant.get(f"/v1/batches/{batch_id}").json()
        if batch["status"] == "completed":
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)


def test_a_batch_repeating_one_photo_calls_the_model_once_per_distinct_image(
    new_tenant: Callable[..., Tenant], stack: Stack, services: Services
):
    run = uuid.uuid4().hex[:8]
    tenant = new_tenant(credits=100)
    photos = [_photo((200, 10, 10)), _photo((10, 200, 10))]
    # Eight listings, two photos: released together, the repeats wait for the first of each.
    items = [{"reference": f"r{i}", "prompt": f"stage it [[run={run}]]", "images": [photos[i % 2]]}
             for i in range(8)]  # fmt: skip
    answer = tenant.post("/v1/batches", {"items": items})
    assert answer.status_code == 202, answer.text
    batch = _batch_done(tenant, answer.json()["id"])
    assert batch["counts"]["succeeded"] == 8
    assert _model_calls(stack, run) == 2
    listed = tenant.get(f"/v1/batches/{batch['id']}/items").json()["items"]
    made = {item["reference"] for item in listed if item.get("reused_from") is None}
    assert len(made) == 2 and all(item["output"] for item in listed)
    # A batch keeps only what its made images cost: each reused item's price is given back.
    unit = pricing.tiered(pricing.price(services.settings.default_model, None), "standard")
    assert 100 - _balance(tenant) == 2 * unit
