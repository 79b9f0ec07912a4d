"""Request and response models of checkout and credit packs."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lote.validation import RequestModel, ReturnUrl


class CheckoutRequest(RequestModel):
    """POST /v1/billing/checkout."""

    pack: str = Field(min_length=1, max_length=200, description="A credit pack id (GET /v1/billing/packs).")
    success_url: ReturnUrl | None = Field(None, description="Where Checkout returns after paying.")
    cancel_url: ReturnUrl | None = Field(None, description="Where Checkout returns if abandoned.")


class CheckoutAnswer(BaseModel):
    """A Stripe Checkout Session to send the buyer to; credits arrive when Stripe reports payment."""

    session_id: str
    url: str
    pack: str
    credits: int


class Pack(BaseModel):
    """A credit pack: a Stripe price lookup key and the credits it buys."""

    pack: str
    credits: int


class PackList(BaseModel):
    """GET /v1/billing/packs."""

    packs: list[Pack]
