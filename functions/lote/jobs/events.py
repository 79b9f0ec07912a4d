"""Webhook events of generations: single generations send all three; batch items only the types
their batch listed in `webhook_events`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lote.jobs.documents import JobDoc
from lote.jobs.views import render

if TYPE_CHECKING:
    from google.cloud import firestore

    from lote.webhooks.events import Outbox

GENERATION_EVENTS = ("generation.succeeded", "generation.failed", "generation.canceled")


def occurrence(job: JobDoc) -> int:
    """Which terminal state of the job this is: a batch retry gives a failed item a new task
    generation before it can end again, so (job, type, task generation) names one change."""
    return int(job.get("task_gen") or 0)


def event(api_url: str, job_id: str, job: JobDoc) -> tuple[str, str, dict[str, Any]] | None:
    """(type, url, resource) of the event a terminal job sends, or None when nobody asked for it."""
    kind = f"generation.{job['status']}"
    url = job.get("webhook_url")
    wanted = job.get("webhook_events")
    if not url or kind not in GENERATION_EVENTS or (wanted is not None and kind not in wanted):
        return None
    return kind, url, render(api_url, job_id, job).model_dump(mode="json", exclude_none=True)


def stage(
    outbox: Outbox,
    writer: firestore.Transaction | firestore.WriteBatch,
    db: firestore.Client,
    job_id: str,
    job: JobDoc,
) -> None:
    """The event of a job that has just reached a terminal state, if its owner asked for it."""
    found = event(outbox.api_url, job_id, job)
    if found is not None:
        kind, url, data = found
        outbox.stage(writer, db, tenant_id=job["tenant_id"], url=url, kind=kind, subject=job_id, data=data,
                     occurrence=occurrence(job))  # fmt: skip
