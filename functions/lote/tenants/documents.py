"""The stored shape of a tenant (`tenants/{ten_…}`). Its `credits` and `slots_lent` are billing's to
write (billing/ledger.py, billing/purse.py): the balance has one owner. TypedDicts, as the job's
(decision note 2026-12-05-typed-documents.md); ARCHITECTURE.md's data model names these fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict, cast


class Limits(TypedDict, total=False):
    """Per-tenant limits (None or absent: the deployment's default)."""

    max_in_flight: int | None
    requests_per_minute: int | None
    subject_requests_per_minute: int | None


class WebhookSecrets(TypedDict, total=False):
    """The signing secrets: the current one, and the previous one during a rotation."""

    current: str
    previous: str | None
    rotated_at: dt.datetime | None


class SpendCaps(TypedDict, total=False):
    """What the tenant set (PATCH /v1/account/spend-controls; billing/spend.py): None is no cap."""

    daily: int | None
    monthly: int | None
    low_balance: int | None
    webhook_url: str | None


class SpendCounts(TypedDict, total=False):
    """Cap room handed out (charged, or lent to purse slices) in `day` and in its month."""

    day: str
    day_out: int
    month_out: int


class TenantDoc(TypedDict, total=False):
    """A partner: its plan and limits, its balance outside the purse slices, its secrets."""

    name: str
    plan: str
    limits: Limits
    allowed_origins: list[str]
    credits: int
    slots_lent: int
    stripe_customer_id: str
    webhook_secrets: WebhookSecrets
    caps: SpendCaps
    spend: SpendCounts | None
    low_balance_warned: bool
    low_balance_warnings: int
    created_at: dt.datetime


def tenant_of(data: Mapping[str, Any] | None) -> TenantDoc:
    """A tenant document as read (`snapshot.to_dict()`), typed; an empty one for a missing tenant."""
    return cast(TenantDoc, dict(data or {}))
