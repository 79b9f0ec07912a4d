"""Response models of webhook deliveries and signing secrets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Attempt(BaseModel):
    """One POST of a delivery."""

    at: str
    status_code: int | None = Field(None, description="The receiver's HTTP status; absent when none came.")
    latency_ms: int
    error: str | None = None


class Delivery(BaseModel):
    """An event and every attempt to deliver it; `id` is the `webhook-id` header."""

    id: str
    type: str
    subject: str = Field(description="The generation or batch the event is about.")
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: list[Attempt]
    created_at: str
    delivered_at: str | None = None
    failed_at: str | None = None
    event: dict[str, Any] | None = Field(None, description="The body as sent (single delivery reads only).")


class DeliveryPage(BaseModel):
    """Deliveries, newest first."""

    deliveries: list[Delivery]
    next_page_token: str | None = None


class WebhookSecret(BaseModel):
    """The secret that signs your webhooks (Standard Webhooks `whsec_` format)."""

    secret: str
    previous_valid_until: str | None = Field(
        None, description="After a rotation, the previous secret also signs until then."
    )
