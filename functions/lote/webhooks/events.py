"""Producing events: inside the transaction of a state change, once per change, rendered as the
resource the GET route returns, wrapped as {id, type, created_at, data}."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lote import ids, timeutil
from lote.webhooks import store

if TYPE_CHECKING:
    from google.cloud import firestore

GENERATION_EVENTS = ("generation.succeeded", "generation.failed", "generation.canceled")
BATCH_EVENTS = ("batch.completed", "batch.canceled")


def delivery_id(subject: str, kind: str, occurrence: int = 0) -> str:
    """The event's id, derived from the change it reports: the same change can never make two."""
    return ids.derived_id("msg", f"{subject}:{kind}:{occurrence}")


def envelope(msg_id: str, kind: str, data: dict[str, Any]) -> str:
    """The JSON body: the resource under `data`, with the event's own id, type and time."""
    created = timeutil.iso(timeutil.now())
    return json.dumps(
        {"id": msg_id, "type": kind, "created_at": created, "data": data}, separators=(",", ":")
    )


@dataclass
class Outbox:
    """What a transaction staged; the caller enqueues it after the commit (see service.enqueue)."""

    api_url: str
    staged: list[str] = field(default_factory=list)

    def _add(self, msg_id: str) -> None:
        if msg_id not in self.staged:  # a retried transaction body stages the same id again
            self.staged.append(msg_id)

    def generation(
        self, tx: firestore.Transaction, db: firestore.Client, job_id: str, job: dict[str, Any]
    ) -> None:
        """The event of a job that has just reached a terminal state, if its owner asked for it.

        Single generations send every generation event; batch items only those their batch listed.
        """
        from lote.jobs.views import render

        kind = f"generation.{job['status']}"
        url = job.get("webhook_url")
        wanted = job.get("webhook_events")
        if not url or kind not in GENERATION_EVENTS or (wanted is not None and kind not in wanted):
            return
        msg_id = delivery_id(job_id, kind)
        data = render(self.api_url, job_id, job).model_dump(mode="json", exclude_none=True)
        store.stage(tx, db, msg_id, job["tenant_id"], url, kind, job_id, envelope(msg_id, kind, data))
        self._add(msg_id)

    def batch(
        self,
        tx: firestore.Transaction,
        db: firestore.Client,
        batch_id: str,
        batch: dict[str, Any],
        tally: dict[str, int],
    ) -> None:
        """The event of a batch that has just finished (once per completion: a retry may reopen it)."""
        url = batch.get("webhook_url")
        if not url:
            return
        kind = "batch.canceled" if batch["status"] == "canceled" else "batch.completed"
        msg_id = delivery_id(batch_id, kind, int(batch.get("completions", 1)))
        data = _batch_view(self.api_url, batch_id, batch, tally)
        store.stage(tx, db, msg_id, batch["tenant_id"], url, kind, batch_id, envelope(msg_id, kind, data))
        self._add(msg_id)


def _batch_view(api_url: str, batch_id: str, batch: dict[str, Any], tally: dict[str, int]) -> dict[str, Any]:
    from lote.batches.schemas import Batch, BatchLinks, Counts, Fanout

    total = int(batch["total"])
    terminal = tally["succeeded"] + tally["failed"] + tally["canceled"]
    base = f"{api_url}/v1/batches/{batch_id}"
    chunks = len(batch.get("chunks", []))
    view = Batch(
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
    return view.model_dump(mode="json", exclude_none=True)
