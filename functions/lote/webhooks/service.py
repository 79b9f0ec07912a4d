"""Webhooks as the API sees them: enqueue after commit, list and redeliver, signing secrets."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lote import ids, tasks, timeutil
from lote.errors import InvalidRequest, NotFound
from lote.services import Services
from lote.statuses import DeliveryStatus
from lote.tenants.service import Caller
from lote.webhooks import store
from lote.webhooks.documents import DeliveryAttempt, DeliveryDoc, delivery_of
from lote.webhooks.events import Outbox
from lote.webhooks.schemas import Attempt, Delivery, DeliveryPage, WebhookSecret

log = logging.getLogger("lote.webhooks")
STATUSES = tuple(s.value for s in DeliveryStatus)


@contextmanager
def events(services: Services) -> Iterator[Outbox]:
    """An outbox for the block's commit (a transaction or an optimistic batch); what it staged is
    enqueued when the block ends, so after the commit (a block that raises committed nothing, and
    enqueues nothing)."""
    box = Outbox(services.settings.api_url)
    yield box
    enqueue(services, box.staged)


def enqueue(services: Services, delivery_ids: list[str], gen: int = 0) -> None:
    """After their commit: each delivery's task, flagged on the delivery; failures go to the sweep."""
    db = services.firestore.db
    for delivery_id in delivery_ids:

        def record(delivery_id: str = delivery_id) -> None:
            store.mark_enqueued(db, delivery_id, tasks.check_at(services, tasks.DeliverWebhook))

        tasks.enqueue(services, tasks.DeliverWebhook(delivery_id=delivery_id, gen=gen), record)


def restart_lost(services: Services, delivery_id: str, gen: int) -> str | None:
    """A pending delivery whose task is gone: a new task (`requeued`), or `failed` once it is older
    than LOTE_ABANDON_AFTER_S (it can be redelivered). None if it moved on meanwhile."""
    give_up_before = timeutil.now() - dt.timedelta(seconds=services.settings.abandon_after_s)
    result = store.restart_lost(services.firestore.db, delivery_id, gen, give_up_before)
    if isinstance(result, int):
        enqueue(services, [delivery_id], result)
        return "requeued"
    return result


def _attempt(found: DeliveryAttempt) -> Attempt:
    return Attempt(
        at=timeutil.iso(found["at"]) or "",
        status_code=found.get("status_code"),
        latency_ms=int(found.get("latency_ms", 0)),
        error=found.get("error"),
    )


def _view(delivery_id: str, doc: DeliveryDoc, with_event: bool = False) -> Delivery:
    attempts = [_attempt(a) for a in doc.get("attempts", [])]
    return Delivery(
        id=delivery_id, type=doc["type"], subject=doc["subject"], url=doc["url"], status=doc["status"],
        attempts=attempts, created_at=timeutil.iso(doc["created_at"]) or "",
        delivered_at=timeutil.iso(doc.get("delivered_at")), failed_at=timeutil.iso(doc.get("failed_at")),
        event=json.loads(doc["body"]) if with_event else None,
    )  # fmt: skip


def _owned(services: Services, caller: Caller, delivery_id: str) -> DeliveryDoc:
    doc = None
    if ids.looks_like(delivery_id, "msg"):
        snapshot = store.ref(services.firestore.db, delivery_id).get()
        doc = delivery_of(snapshot.to_dict()) if snapshot.exists else None
    if doc is None or doc.get("tenant_id") != caller.tenant_id:
        raise NotFound(f"no delivery {delivery_id[:64]!r}", {"id": delivery_id[:64]})
    return doc


def page(
    services: Services, caller: Caller, status: str | None, token: str | None, size: int = 50
) -> DeliveryPage:
    """The caller's deliveries, newest first, optionally of one status."""
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}", {"field": "status"})
    if token is not None and not ids.looks_like(token, "msg"):
        raise InvalidRequest("page_token is not valid", {"field": "page_token"})
    found = store.page(services.firestore.db, caller.tenant_id, status, size, token)
    if found is None:
        raise InvalidRequest("page_token is not valid: no such delivery", {"field": "page_token"})
    deliveries = [_view(s.id, delivery_of(s.to_dict())) for s in found]
    return DeliveryPage(deliveries=deliveries, next_page_token=found[-1].id if len(found) == size else None)


def get(services: Services, caller: Caller, delivery_id: str) -> Delivery:
    """One delivery with the event as sent."""
    return _view(delivery_id, _owned(services, caller, delivery_id), with_event=True)


def redeliver(services: Services, caller: Caller, delivery_id: str) -> Delivery:
    """Send a delivered or failed event again (same webhook-id, so receivers can deduplicate)."""
    _owned(services, caller, delivery_id)
    doc = store.redeliver(services.firestore.db, delivery_id, caller.tenant_id)  # DeliveryPending: 409
    if doc is None:
        raise NotFound(f"no delivery {delivery_id!r}", {"id": delivery_id})
    enqueue(services, [delivery_id], int(doc["task_gen"]))
    return _view(delivery_id, doc)


def _secret_view(found: dict[str, Any]) -> WebhookSecret:
    until = None
    if found.get("previous") and found.get("rotated_at"):
        end = found["rotated_at"] + store.ROTATION_OVERLAP
        until = timeutil.iso(end) if end > timeutil.now() else None
    return WebhookSecret(secret=found["current"], previous_valid_until=until)


def secret(services: Services, caller: Caller) -> WebhookSecret:
    """The tenant's signing secret (made on first use)."""
    return _secret_view(store.secrets(services.firestore.db, caller.tenant_id))


def rotate(services: Services, caller: Caller) -> WebhookSecret:
    """A new signing secret; for 24 h both sign every webhook."""
    return _secret_view(store.rotate(services.firestore.db, caller.tenant_id))
