"""Webhook events of batches: `batch.completed` or `batch.canceled`, once per completion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lote.batches import progress
from lote.batches.documents import BatchDoc
from lote.statuses import BatchStatus

if TYPE_CHECKING:
    from google.cloud import firestore

    from lote.webhooks.events import Outbox


def stage(
    outbox: Outbox,
    tx: firestore.Transaction,
    db: firestore.Client,
    batch_id: str,
    batch: BatchDoc,
    tally: dict[str, int],
) -> None:
    """The event of a batch that has just finished (a retry may reopen and finish it again)."""
    url = batch.get("webhook_url")
    if not url:
        return
    kind = "batch.canceled" if batch["status"] == BatchStatus.CANCELED else "batch.completed"
    data = view(outbox.api_url, batch_id, batch, tally)
    outbox.stage(tx, db, tenant_id=batch["tenant_id"], url=url, kind=kind, subject=batch_id, data=data,
                 occurrence=int(batch.get("completions", 1)))  # fmt: skip


def view(api_url: str, batch_id: str, batch: BatchDoc, tally: dict[str, int]) -> dict[str, Any]:
    """The Batch resource as it stood when it finished (counts from the settling transaction)."""
    chunks = len(batch.get("chunks") or [])
    resource = progress.render(api_url, batch_id, batch, tally, chunks)
    return resource.model_dump(mode="json", exclude_none=True)
