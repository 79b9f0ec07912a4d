"""The repair sweep after a worker outage: tasks that ran out of attempts while nothing answered.

Cloud Tasks deletes a task that has exhausted its retries; here the test deletes it (what the queue
does after `max_attempts` and `max_retry_duration`) and moves the job's check time into the past
(what waiting does), then runs the sweep as Cloud Scheduler would.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from google.api_core import exceptions
from google.cloud import tasks_v2

from lote import repair, timeutil
from lote.batches import store as batch_store
from lote.jobs import store as job_store
from lote.services import Services
from tests.support import Target

PAST = dt.timedelta(minutes=1)


@contextmanager
def paused(tasks_client: tasks_v2.CloudTasksClient, queue: str) -> Iterator[None]:
    """Nothing of `queue` is dispatched inside the block."""
    tasks_client.pause_queue(name=queue)
    try:
        yield
    finally:
        tasks_client.resume_queue(name=queue)


def _lose_task(tasks_client: tasks_v2.CloudTasksClient, queue: str, task_id: str) -> None:
    """What Cloud Tasks does to a task whose attempts are exhausted: it is deleted."""
    with suppress(exceptions.NotFound):
        tasks_client.delete_task(name=f"{queue}/tasks/{task_id}")


def _job(services: Services, job_id: str) -> dict[str, Any]:
    return job_store.ref(services.firestore.db, job_id).get().to_dict() or {}


def _balance(services: Services, tenant_id: str) -> int:
    from lote.billing import purse

    found = purse.read(services.firestore.db, tenant_id)
    assert found is not None
    return found.balance


def test_a_queued_job_whose_task_ran_out_of_attempts_gets_a_new_one(
    tenant, services: Services, tasks_client, generation_queue: str
):
    db = services.firestore.db
    with paused(tasks_client, generation_queue):
        lost = tenant.post("/v1/generations", {"prompt": "lost in the outage"}).json()["id"]
        alive = tenant.post("/v1/generations", {"prompt": "still waiting its turn"}).json()["id"]
        _lose_task(tasks_client, generation_queue, f"{lost}-0")
        for job_id in (lost, alive):
            job_store.ref(db, job_id).update({"task_check_at": timeutil.now() - PAST})
        before = _job(services, lost)
        assert (before["status"], before["enqueued"], before["attempts"]) == ("queued", True, 0)
        done = repair.sweep(services)
        assert done["lost_tasks"] >= 1 and done["tasks_alive"] >= 1
        assert _job(services, lost)["task_gen"] == 1  # a new task generation, enqueued
        assert (
            _job(services, alive)["task_gen"] == 0 and _job(services, alive)["task_check_at"] > timeutil.now()
        )
    for job_id in (lost, alive):
        assert tenant.wait(job_id)["status"] == "succeeded"
    assert repair.sweep(services)["lost_tasks"] == 0  # nothing left to repair


def test_a_job_too_old_to_finish_is_abandoned_refunded_and_reported(
    tenant, services: Services, tasks_client, generation_queue: str, target: Target
):
    db = services.firestore.db
    balance = _balance(services, tenant.tenant_id)
    with paused(tasks_client, generation_queue):
        job_id = tenant.post("/v1/generations", {"prompt": "x", "webhook_url": target.url}).json()["id"]
        assert _balance(services, tenant.tenant_id) == balance - 1
        _lose_task(tasks_client, generation_queue, f"{job_id}-0")
        job_store.ref(db, job_id).update({
            "task_check_at": timeutil.now() - PAST, "created_at": timeutil.now() - dt.timedelta(days=2),
        })  # fmt: skip
        assert repair.sweep(services)["abandoned"] >= 1
    job = tenant.wait(job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "abandoned" and job["error"]["retryable"]
    assert _balance(services, tenant.tenant_id) == balance  # refunded once
    [hit] = target.wait_for(1)
    assert b'"generation.failed"' in hit.body
    assert repair.sweep(services)["abandoned"] == 0


def test_a_batch_whose_fanout_and_checker_tasks_were_lost_still_completes(
    tenant, services: Services, tasks_client, stack, generation_queue: str
):
    c = stack.config
    fanout_queue = f"projects/{c.project_id}/locations/{c.location}/queues/fanout"
    db = services.firestore.db
    with paused(tasks_client, fanout_queue):
        batch_id = tenant.post(
            "/v1/batches", {"items": [{"reference": f"r{i}", "prompt": "x"} for i in range(3)]}
        ).json()["id"]
        _lose_task(tasks_client, fanout_queue, f"{batch_id}-plan-0")
        batch_store.ref(db, batch_id).update({"created_at": timeutil.now() - dt.timedelta(minutes=5)})
        assert repair.sweep(services)["fanouts_resumed"] >= 1
        assert batch_store.ref(db, batch_id).get().get("fanout_gen") == 1
    # The resumed fan-out creates the items while none can run; then the checker chain is lost:
    # its queue stays paused until the sweep has run, and the chain's generation is moved on, so a
    # check that was already under way when the queue paused can only see unfinished items (the
    # generation queue is still paused) or a newer generation (a no-op). Only the sweep can settle.
    with paused(tasks_client, generation_queue):
        deadline = time.monotonic() + 30
        while (
            len(batch_store.done_chunks(db, batch_id)) < 1
            or sum(batch_store.counts(db, batch_id).values()) < 3
        ):
            assert time.monotonic() < deadline, batch_store.counts(db, batch_id)
            time.sleep(0.05)
        tasks_client.pause_queue(name=fanout_queue)
        try:
            tasks_client.purge_queue(name=fanout_queue)
            batch_store.ref(db, batch_id).update({"check_gen": 1})
        except BaseException:
            tasks_client.resume_queue(name=fanout_queue)
            raise
    try:
        deadline = time.monotonic() + 30
        while sum(batch_store.counts(db, batch_id)[s] for s in ("succeeded", "failed")) < 3:
            assert time.monotonic() < deadline, batch_store.counts(db, batch_id)
            time.sleep(0.05)
        assert batch_store.ref(db, batch_id).get().get("finished_at") is None
        assert repair.sweep(services)["batches_settled"] >= 1
    finally:
        tasks_client.resume_queue(name=fanout_queue)
    batch = tenant.get(f"/v1/batches/{batch_id}").json()
    assert batch["status"] == "completed" and batch["counts"]["succeeded"] == 3
    assert batch_store.ref(db, batch_id).get().get("completions") == 1


def test_the_sweep_reaches_every_running_batch_however_many_older_ones_run(services: Services):
    """A round over running batches: each sweep takes the next `limit`, not always the oldest."""
    db = services.firestore.db
    ancient = dt.datetime(2001, 1, 1, tzinfo=dt.UTC)
    ids = [f"bat_sweepround{i}{time.time_ns()}" for i in range(5)]
    for i, batch_id in enumerate(ids):  # older than any real batch: the first of every round
        batch_store.ref(db, batch_id).set(
            {"finished_at": None, "created_at": ancient + dt.timedelta(seconds=i)}
        )
    batch_store.sweep_cursor_ref(db).delete()
    try:
        pages = [[s.id for s in repair._running_batches(db, timeutil.now(), 2)] for _ in range(3)]
    finally:
        for batch_id in ids:
            batch_store.ref(db, batch_id).delete()
    assert pages[0] == ids[:2] and pages[1] == ids[2:4] and pages[2][0] == ids[4], pages
