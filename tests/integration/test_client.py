"""The Python client (clients/python, `lote_client`) against the local stack: every call, a create
retried after its answer was lost, resumable downloads, progress, the async client, and the
verification of real webhook deliveries."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore import FieldFilter
from PIL import Image

from examples.webhook_receiver import create_app
from lote.services import Services
from lote_client import (
    AsyncLote,
    Batch,
    Lote,
    NotFound,
    PermissionDenied,
    RetryPolicy,
    WebhookVerificationError,
)
from tests.integration.conftest import Tenant
from tests.support import DroppingProxy, Target

FAST = RetryPolicy(attempts=4, base_s=0.05, cap_s=1)


def _lote(tenant: Tenant, base_url: str | None = None) -> Lote:
    return Lote(tenant.api_key, base_url=base_url or tenant.base, retry=FAST)


def _photo(folder: Path, name: str = "room.png") -> Path:
    path = folder / name
    Image.new("RGB", (96, 64), (180, 170, 160)).save(path)
    return path


def _jobs_of(services: Services, tenant_id: str) -> int:
    query = services.firestore.db.collection("jobs").where(filter=FieldFilter("tenant_id", "==", tenant_id))
    return len(list(query.select([]).stream()))


def test_a_generation_from_a_local_photo_is_waited_for_and_downloaded_checked(tenant: Tenant, tmp_path: Path):
    with _lote(tenant) as lote:
        made = lote.generations.create(preset="declutter", images=[_photo(tmp_path)], wait=True)
        assert made.status == "succeeded" and made.images[0].startswith("gs://")  # uploaded first
        assert made.quality is not None and made.quality.passed
        saved = lote.generations.download(made, tmp_path)
        assert saved.name == f"{made.id}.png" and made.output is not None
        assert hashlib.sha256(saved.read_bytes()).hexdigest() == made.output.sha256
        assert lote.generations.get(made.id).status == "succeeded"
        slow = lote.generations.create("a slow hall [[latency=3000]]")
        assert not slow.done
        lote.generations.cancel(slow.id)
        assert lote.generations.wait(slow.id, timeout=30).status == "canceled"
        assert "virtual-staging" in {p.name for p in lote.presets.list()}
        with pytest.raises(NotFound) as missing:
            lote.generations.get("gen_nope")
        assert missing.value.status == 404 and missing.value.code == "not_found"


def test_a_create_whose_answer_is_lost_is_retried_with_its_key_and_creates_one_job(
    tenant: Tenant, services: Services
):
    proxy = DroppingProxy(tenant.base, lambda method, path: method == "POST" and path == "/v1/generations")
    try:
        with _lote(tenant, proxy.url) as lote:
            made = lote.generations.create("a kitchen, retried")
        assert proxy.dropped == ["POST /v1/generations 202"]  # the first answer never reached the client
        assert proxy.forwarded.count("POST /v1/generations 202") == 2  # sent again: the replay
        assert _jobs_of(services, tenant.tenant_id) == 1
        assert Lote(tenant.api_key, base_url=tenant.base).generations.wait(made.id, 30).status == "succeeded"
    finally:
        proxy.close()


def test_a_batch_is_followed_listed_streamed_and_downloaded_resumably(tenant: Tenant, tmp_path: Path):
    items = [{"reference": f"room/{i}", "prompt": f"room {i} [[latency=150]]"} for i in range(12)]
    items.append({"reference": "blocked", "prompt": "refused [[fault=safety]]"})
    seen: list[Batch] = []
    with _lote(tenant) as lote:
        accepted = lote.batches.create(items, priority="standard")
        assert accepted.total == 13
        final = lote.batches.wait(accepted.id, on_progress=seen.append, timeout=120)
        assert final.status == "completed" and (final.counts.succeeded, final.counts.failed) == (12, 1)
        finished = [b.counts.succeeded + b.counts.failed + b.counts.canceled for b in seen]
        assert finished == sorted(finished) and seen[-1].done  # progress never goes back
        assert [i.reference for i in lote.batches.iter_items(accepted.id, status="failed", page_size=5)] == [
            "blocked"
        ]
        assert len(list(lote.batches.iter_items(accepted.id, page_size=5))) == 13  # three pages
        rows = list(lote.batches.results(accepted.id))
        assert [r["reference"] for r in rows] == [i["reference"] for i in items]
        assert _results_through_a_broken_stream(tenant, accepted.id) == rows
        out = tmp_path / "out"
        first = lote.batches.download(accepted.id, out, concurrency=4)
        assert (first.downloaded, first.skipped, first.failed) == (12, 0, [])
        files = sorted(out.iterdir())
        assert len(files) == 12 and not any(f.name.endswith(".part") for f in files)
        files[0].unlink()  # interrupted before this one
        files[1].write_bytes(b"half an image")  # and in the middle of this one
        blocker = out / files[2].name
        blocker.unlink()
        blocker.mkdir()  # a file that cannot be written: reported, the rest goes on
        again = lote.batches.download(accepted.id, out, concurrency=4)
        assert (again.downloaded, again.skipped, len(again.failed)) == (2, 9, 1)
        assert again.failed[0].path == blocker and again.failed[0].error
        assert lote.batches.retry(accepted.id, include_permanent=True) == 1
        assert accepted.id in {b.id for b in lote.batches.list()}
        lote.batches.wait(accepted.id, timeout=60)


def _results_through_a_broken_stream(tenant: Tenant, batch_id: str) -> list[dict[str, Any]]:
    # The first answer breaks after four and a half lines: the client asks again from the fifth item
    # (it used to count lines, which shift if the batch's items are still being created).
    first = tenant.get(f"/v1/batches/{batch_id}/results.jsonl").content
    cut_at = sum(len(line) + 1 for line in first.split(b"\n")[:4]) + 20
    proxy = DroppingProxy(tenant.base, lambda method, path: "results.jsonl" in path, cut_at=cut_at)
    try:
        with _lote(tenant, proxy.url) as lote:
            rows = list(lote.batches.results(batch_id))

        async def streamed() -> list[dict[str, Any]]:
            async with AsyncLote(tenant.api_key, base_url=proxy.url, retry=FAST) as lote:
                return [row async for row in lote.batches.results(batch_id)]

        proxy.dropped.clear()  # the async client's first answer breaks the same way
        assert asyncio.run(streamed()) == rows
    finally:
        proxy.close()
    resumed = [f for f in proxy.forwarded if "from_index" in f]
    assert resumed == [f"GET /v1/batches/{batch_id}/results.jsonl?from_index=4 200"] * 2, proxy.forwarded
    return rows


def test_the_async_client_does_the_same_calls(tenant: Tenant, tmp_path: Path):
    async def scenario() -> tuple[str, int, int]:
        async with AsyncLote(tenant.api_key, base_url=tenant.base, retry=FAST) as lote:
            made = await lote.generations.create("an attic", wait=True)
            saved = await lote.generations.download(made.id, tmp_path / "one.png")
            batch = await lote.batches.create(
                [{"reference": f"a{i}", "prompt": f"attic {i}"} for i in range(5)]
            )
            final = await lote.batches.wait(batch.id, timeout=60)
            report = await lote.batches.download(batch.id, tmp_path / "many", concurrency=3)
            rows = [row async for row in lote.batches.results(batch.id)]
            assert [p.name async for p in _presets(lote)]
            return saved.name, final.counts.succeeded, report.downloaded + len(rows)

    assert asyncio.run(scenario()) == ("one.png", 5, 10)


async def _presets(lote: AsyncLote):  # type: ignore[no-untyped-def]
    for preset in await lote.presets.list():
        yield preset


def test_real_deliveries_verify_with_the_client_through_a_secret_rotation(tenant: Tenant, target: Target):
    old = tenant.get("/v1/account/webhook-secret").json()["secret"]
    with _lote(tenant) as lote:
        lote.generations.create("a porch", webhook_url=target.url, wait=True)
        [hit] = target.wait_for(1)
        assert lote.webhooks.verify(hit.headers, hit.body, old)["type"] == "generation.succeeded"
        new = tenant.post("/v1/account/webhook-secret/rotate").json()["secret"]
        lote.generations.create("a porch again", webhook_url=target.url, wait=True)
        rotated = target.wait_for(2)[1]
        for secret in (old, new, [new, old]):  # both sign for a day: receivers switch when they like
            assert (
                lote.webhooks.verify(rotated.headers, rotated.body, secret)["data"]["status"] == "succeeded"
            )
        with pytest.raises(WebhookVerificationError):
            lote.webhooks.verify(rotated.headers, rotated.body.replace(b"succeeded", b"failed"), new)
    # The example receiver (examples/webhook_receiver.py) takes the same delivery, once.
    received: list[dict] = []
    receiver = create_app([new, old], received.append).test_client()
    headers = {k: v for k, v in rotated.headers.items() if k.lower().startswith(("webhook-", "content-type"))}
    assert receiver.post("/lote/webhooks", data=rotated.body, headers=headers).status_code == 204
    assert (
        receiver.post("/lote/webhooks", data=rotated.body, headers=headers).status_code == 204
    )  # redelivered
    assert [event["type"] for event in received] == ["generation.succeeded"]  # handled once
    assert receiver.post("/lote/webhooks", data=rotated.body + b" ", headers=headers).status_code == 400


def test_a_manifest_carries_more_items_than_a_post_may(new_tenant, services: Services):
    tenant = new_tenant(credits=20_000)
    with _lote(tenant) as lote:
        accepted = lote.batches.create(
            [{"reference": f"m{i}", "prompt": f"m {i}"} for i in range(30)], inline_limit=10
        )
        doc = services.firestore.db.collection("batches").document(accepted.id).get().to_dict() or {}
        assert accepted.total == 30 and doc["source"] == "manifest"  # sent as a JSONL upload
        assert lote.batches.wait(accepted.id, timeout=60).counts.succeeded == 30


def test_a_client_token_works_in_place_of_the_key_within_its_scopes(tenant: Tenant):
    minted = tenant.post("/v1/client-tokens", {"subject": "user-7", "scopes": ["generations:create", "generations:read"],
                                               "ttl_s": 600})  # fmt: skip
    with Lote(token=minted.json()["token"], base_url=tenant.base, retry=FAST) as lote:
        assert lote.generations.create("a token's hall", wait=True).status == "succeeded"
        with pytest.raises(PermissionDenied) as refused:
            lote.batches.create([{"reference": "r", "prompt": "x"}])
        assert refused.value.status == 403 and refused.value.code == "insufficient_scope"


def test_a_create_that_uploads_first_can_be_resubmitted_with_its_key(tenant: Tenant, tmp_path: Path):
    # Uploads are named by their content, so the resubmitted body is the same and the key replays.
    photo = _photo(tmp_path)
    items = [{"reference": f"k{i}", "prompt": f"k {i}"} for i in range(12)]
    with _lote(tenant) as lote:
        first = lote.generations.create(preset="declutter", images=[photo], idempotency_key="same-photo")
        again = lote.generations.create(preset="declutter", images=[photo], idempotency_key="same-photo")
        assert again.id == first.id
        batch = lote.batches.create(items, inline_limit=10, idempotency_key="same-manifest")  # a manifest
        assert lote.batches.create(items, inline_limit=10, idempotency_key="same-manifest").id == batch.id
        lote.generations.wait(first.id, 30)
        lote.batches.wait(batch.id, timeout=60)
