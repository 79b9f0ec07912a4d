"""Producing events: in the commit of a state change, once per change, wrapped as
{id, type, created_at, data} around the resource the GET route returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lote import ids, timeutil
from lote.webhooks import store
from lote.webhooks.documents import DeliveryDoc

if TYPE_CHECKING:
    from google.cloud import firestore


def delivery_id(subject: str, kind: str, occurrence: int = 0) -> str:
    """The event's id, derived from the change it reports: the same change can never make two."""
    return ids.derived_id("msg", f"{subject}:{kind}:{occurrence}")


def envelope(msg_id: str, kind: str, data: dict[str, Any]) -> str:
    """The JSON body: the resource under `data`, with the event's own id, type and time."""
    created = timeutil.iso(timeutil.now())
    return json.dumps(
        {"id": msg_id, "type": kind, "created_at": created, "data": data}, separators=(",", ":")
    )


def prepared(
    *, tenant_id: str, url: str, kind: str, subject: str, data: dict[str, Any], occurrence: int = 0
) -> tuple[str, DeliveryDoc]:
    """(id, document) of an event written outside its change's commit, with create-if-absent: for
    state changes made in bulk, whose events follow them (the derived id still makes each one
    unique)."""
    msg_id = delivery_id(subject, kind, occurrence)
    return msg_id, store.document(tenant_id, url, kind, subject, envelope(msg_id, kind, data))


@dataclass
class Outbox:
    """What a commit staged; the caller enqueues it after the commit (see service.enqueue).

    Domains render their own resources (jobs/events.py, batches/events.py); this module knows
    nothing of them.
    """

    api_url: str
    staged: list[str] = field(default_factory=list)

    def stage(
        self,
        writer: firestore.Transaction | firestore.WriteBatch,
        db: firestore.Client,
        *,
        tenant_id: str,
        url: str,
        kind: str,
        subject: str,
        data: dict[str, Any],
        occurrence: int = 0,
    ) -> None:
        """Into the commit of a state change: its event, once (the id derives from it)."""
        msg_id = delivery_id(subject, kind, occurrence)
        store.stage(writer, db, msg_id, tenant_id, url, kind, subject, envelope(msg_id, kind, data))
        if msg_id not in self.staged:  # a retried commit's body stages the same id again
            self.staged.append(msg_id)
