"""Webhook events of batches: `batch.completed` or `batch.canceled`, once per completion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lote import timeutil
from lote.batches.schemas import Batch, BatchLinks, Counts, Fanout

if TYPE_CHECKING:
    from google.cloud import firestore

    from lote.webhooks.events import Outbox


def stage(
    outbox: Outbox,
    tx: firestore.Transaction,
    db: firestore.Client,
    batch_id: str,
    batch: dict[str, Any],
    tally: dict[str, int],
) -> None:
    """The event of a batch that has just finished (a retry may reopen and finish it again)."""
    url = batch.get("webhook_url")
    if not url:
        return
    kind = "batch.canceled" if batch["status"] == "canceled" else "batch.completed"
    data = view(outbox.api_url, batch_id, batch, tally)
    outbox.stage(tx, db, tenant_id=batch["tenant_id"], url=url, kind=kind, subject=batch_id, data=data,
                 occurrence=int(batch.get("completions", 1)))  # fmt: skip


def view(api_url: str, batch_id: str, batch: dict[str, Any], tally: dict[str, int]) -> dict[str, Any]:
    """The Batch resource as it stood when it finished (counts from the settling transaction)."""
    total = int(batch["total"])
    terminal = tally["succeeded"] + tally["failed"] + tally["canceled"]
    base = f"{api_url}/v1/batches/{batch_id}"
    chunks = len(batch.get("chunks", []))
    resource = Batch(
        id=batch_id,
        status=batch["status"],
        counts=Counts(total=total, **tally),
        progress=round(100.0 * terminal / total, 2) if total else 100.0,
        fanout=Fanout(chunks_done=chunks, chunks_total=chunks, complete=True),
        created_at=timeutil.iso(batch["created_at"]) or "",
        started_at=timeutil.iso(batch.get("started_at")),
        finished_at=timeutil.iso(batch.get("finished_at")),
        metadata=batch.get("metadata") or {},
        links=BatchLinks(self=base, items=f"{base}/items", results=f"{base}/results.jsonl"),
    )
    return resource.model_dump(mode="json", exclude_none=True)
