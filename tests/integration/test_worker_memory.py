"""The worker's memory budget (jobs/memory.py): attempts reserve their images' memory before they
hold them, wait when it is full, and give the job back, uncounted, when the wait runs out. The
worker runs in this process with a small budget, against the stack's services and model."""

from __future__ import annotations

import dataclasses
import io
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from PIL import Image

from lote import ids
from lote.jobs import memory, store, worker
from lote.jobs import service as jobs
from lote.jobs.schemas import GenerationRequest
from lote.services import Services
from lote_local.stack import Stack
from tests.integration.conftest import Tenant

BUDGET_MB = (
    64  # an attempt reserves 56 MiB for a photo of any size, then keeps 20 for its 2.8 MB: two never fit
)


def _photo() -> bytes:
    size = (3000, 2000)
    noise = Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    Image.blend(Image.new("RGB", size, (90, 120, 150)), noise, 0.5).save(out, format="JPEG", quality=80)
    return out.getvalue()


def _jobs(services: Services, tenant: Tenant, run: str, count: int) -> list[str]:
    bucket = services.settings.input_bucket
    name = f"uploads/{tenant.tenant_id}/big.jpg"
    services.storage.put_once(bucket, name, _photo(), "image/jpeg")
    made = []
    for i in range(count):
        request = GenerationRequest.model_validate(
            {"prompt": f"stage {i} [[latency=700]] [[run={run}]]", "images": [f"gs://{bucket}/{name}"]}
        )
        job_id = ids.new_id("gen")
        doc = {**jobs.new_job(services, tenant.tenant_id, job_id, request), "enqueued": True}
        store.create(services.firestore.db, job_id, doc, None, (202, {}, {}))
        made.append(job_id)
    return made


def _worker(services: Services, wait_s: float) -> Services:
    update = {"worker_memory_budget_mb": BUDGET_MB, "worker_memory_wait_s": wait_s}
    return dataclasses.replace(services, settings=services.settings.model_copy(update=update))


def _in_flight_max(stack: Stack, run: str) -> int:
    stats: dict[str, Any] = requests.get(stack.url(stack.config.model_port) + "/stats", timeout=5).json()
    return int(stats.get(f"in_flight_max:run={run}", 0))


def test_attempts_wait_for_memory_and_the_model_never_sees_two_at_once(
    stack: Stack, new_tenant, services: Services
):
    tenant, run = new_tenant(), f"mem-{ids.new_id('r')}"
    job_ids = _jobs(services, tenant, run, 3)
    local = _worker(services, wait_s=30)
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda job_id: worker.run(local, job_id, 0), job_ids))
    assert [a.body["result"] for a in answers] == ["succeeded"] * 3
    assert _in_flight_max(stack, run) == 1  # without the budget, all three called the model at once
    budget = memory.budget(BUDGET_MB * 1024 * 1024)
    assert budget.used == 0 and budget.peak <= budget.limit
    assert {tenant.get(f"/v1/generations/{j}").json()["attempts"] for j in job_ids} == {1}


def test_an_attempt_that_cannot_get_memory_in_time_gives_its_job_back_uncounted(
    stack: Stack, new_tenant, services: Services
):
    tenant, run = new_tenant(), f"mem-{ids.new_id('r')}"
    job_ids = _jobs(services, tenant, run, 2)
    local = _worker(services, wait_s=0.2)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda job_id: worker.run(local, job_id, 0), job_ids))
    assert sorted(a.body["result"] for a in answers) == ["deferred", "succeeded"]
    # The deferred job went on in a new task, delivered to the stack's own worker.
    finished = [tenant.wait(j, timeout=30) for j in job_ids]
    assert [f["status"] for f in finished] == ["succeeded", "succeeded"]
    assert [f["attempts"] for f in finished] == [1, 1]  # the attempt that got no memory was not counted
