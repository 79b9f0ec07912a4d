"""The stored shape of a webhook delivery (`webhook_deliveries/{msg_…}`). TypedDicts, as the job's
(decision note 2026-12-05-typed-documents.md); ARCHITECTURE.md's data model names these fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict, cast


class DeliveryAttempt(TypedDict, total=False):
    """One POST of the delivery (the last 100 are kept)."""

    at: dt.datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    retry_count: int


class DeliveryDoc(TypedDict, total=False):
    """One event for one endpoint, sent until it is acknowledged or given up on."""

    tenant_id: str
    type: str
    subject: str  # the job or batch the event is about
    url: str
    body: str  # the exact JSON sent, rendered once
    status: str
    attempts: list[DeliveryAttempt]
    attempt_count: int
    created_at: dt.datetime
    cycle_started_at: dt.datetime
    delivered_at: dt.datetime | None
    failed_at: dt.datetime | None
    enqueued: bool
    task_gen: int
    task_check_at: dt.datetime | None
    lease_until: dt.datetime | None
    expires_at: dt.datetime


def delivery_of(data: Mapping[str, Any] | None) -> DeliveryDoc:
    """A delivery document as read (`snapshot.to_dict()`), typed; an empty one for a missing one."""
    return cast(DeliveryDoc, dict(data or {}))
