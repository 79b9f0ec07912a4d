"""Creating the task kinds a batch uses: fan-out plan, fan-out chunks, checker, item generations."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lote.services import Services

log = logging.getLogger("lote.batches")
PARALLEL_CREATES = 16


def create(
    services: Services, queue: str, task_id: str, path: str, payload: dict[str, Any], delay_s: float = 0
) -> bool:
    """One named task to the worker (False when the name is taken: it exists or existed)."""
    s = services.settings
    return services.tasks.create_http_task(
        queue,
        task_id,
        f"{s.worker_url}{path}",
        json.dumps(payload).encode(),
        audience=s.worker_url,
        invoker=s.tasks_invoker_email,
        deadline_s=s.task_dispatch_deadline_s,
        delay_s=delay_s,
    )


def create_many(services: Services, tasks: list[tuple[str, str, str, dict[str, Any]]]) -> None:
    """Create tasks in parallel; any failure other than ALREADY_EXISTS is raised (retry the step)."""
    with ThreadPoolExecutor(max_workers=PARALLEL_CREATES) as pool:
        list(pool.map(lambda t: create(services, *t), tasks))


def plan(services: Services, batch_id: str, gen: int) -> bool:
    """The task that enqueues every chunk of a batch."""
    payload = {"batch_id": batch_id, "gen": gen}
    return create(
        services, services.settings.fanout_queue, f"{batch_id}-plan-{gen}", "/tasks/fanout-plan", payload
    )


def check(services: Services, batch_id: str, gen: int, seq: int, delay_s: float) -> bool:
    """The next link of a batch's checker chain (names make a forked chain collapse)."""
    payload = {"batch_id": batch_id, "gen": gen, "seq": seq}
    task_id = f"{batch_id}-check-{gen}-{seq}"
    return create(services, services.settings.fanout_queue, task_id, "/tasks/batch-check", payload, delay_s)


def generation(job_id: str, task_gen: int, services: Services) -> tuple[str, str, str, dict[str, Any]]:
    """Arguments of create() for an item's generation task."""
    return (services.settings.generation_queue, f"{job_id}-{task_gen}", "/tasks/generate", {"job_id": job_id})


def item_events(services: Services, batch_id: str, completion: int, start: int, tag: str = "") -> bool:
    """A page of a canceled batch's item events (`tag` lets the repair sweep start a new chain)."""
    payload = {"batch_id": batch_id, "completion": completion, "start": start}
    task_id = f"{batch_id}-items-{completion}-{start}{tag}"
    return create(services, services.settings.fanout_queue, task_id, "/tasks/batch-item-events", payload)
