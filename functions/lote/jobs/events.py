"""Webhook events of generations: single generations send all three; batch items only the types
their batch listed in `webhook_events`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lote.jobs.views import render

if TYPE_CHECKING:
    from google.cloud import firestore

    from lote.webhooks.events import Outbox

GENERATION_EVENTS = ("generation.succeeded", "generation.failed", "generation.canceled")


def stage(
    outbox: Outbox, tx: firestore.Transaction, db: firestore.Client, job_id: str, job: dict[str, Any]
) -> None:
    """The event of a job that has just reached a terminal state, if its owner asked for it."""
    kind = f"generation.{job['status']}"
    url = job.get("webhook_url")
    wanted = job.get("webhook_events")
    if not url or kind not in GENERATION_EVENTS or (wanted is not None and kind not in wanted):
        return
    data = render(outbox.api_url, job_id, job).model_dump(mode="json", exclude_none=True)
    outbox.stage(tx, db, tenant_id=job["tenant_id"], url=url, kind=kind, subject=job_id, data=data)
