"""Request and response models of checkout and credit packs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from lote.validation import RequestModel, ReturnUrl, WebhookUrl, whole

if TYPE_CHECKING:
    CapCredits = int
else:
    CapCredits = whole(0, 1_000_000_000)


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


class SpendControlsUpdate(RequestModel):
    """PATCH /v1/account/spend-controls: only the fields given change; null removes one."""

    daily_cap: CapCredits | None = Field(
        None,
        description="Credits lote may charge in a UTC day (403 `spend_cap_reached` beyond); null: no cap.",
    )
    monthly_cap: CapCredits | None = Field(
        None, description="Credits lote may charge in a UTC month; null: no cap."
    )
    low_balance_threshold: CapCredits | None = Field(
        None, description="`account.low_balance` is sent once when the balance falls below this."
    )
    webhook_url: WebhookUrl | None = Field(
        None, description="Where the account's events (`account.low_balance`, `account.cap_reached`) go."
    )


class SpendControls(BaseModel):
    """GET /v1/account/spend-controls: the caps, what they have counted, the warning's state."""

    daily_cap: int | None
    monthly_cap: int | None
    low_balance_threshold: int | None
    webhook_url: str | None
    charged_today: int = Field(description="Credits debited this UTC day (refunds do not reduce it).")
    charged_this_month: int = Field(description="Credits debited this UTC month.")
    low_balance: bool = Field(
        description="The balance fell below the threshold and has not risen to it since."
    )
    day_resets_at: str
    month_resets_at: str
