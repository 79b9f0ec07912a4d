"""Request and response models of accounts, keys, the ledger and the admin routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field, StringConstraints

from lote.validation import NOT_BLANK, RequestModel, whole

# A web origin as browsers send it: scheme, host, optional port; no path. http only for localhost.
ORIGIN_PATTERN = r"^(?:https://[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*|http://(?:localhost|127\.0\.0\.1))(?::[0-9]{1,5})?$"
Origin = Annotated[str, StringConstraints(pattern=ORIGIN_PATTERN, max_length=300)]

# Constraints inside the optional type, so the JSON Schema carries them (minimum, maximum).
if TYPE_CHECKING:
    InFlight = int
    PerMinute = int
    Credits = int
    GrantSize = int
else:
    InFlight, PerMinute = whole(1, 100_000), whole(1, 1_000_000)
    Credits, GrantSize = whole(0, 10_000_000), whole(1, 10_000_000)


class Limits(BaseModel):
    """What a plan allows."""

    max_in_flight: int = Field(
        description="Single generations queued or running at once (429 beyond); batch items queue instead."
    )
    requests_per_minute: int = Field(
        description="Requests per API key per minute, and of all client tokens together (429 beyond)."
    )
    subject_requests_per_minute: int = Field(
        description="Requests per end user (client token subject) per minute."
    )


class PlanUpdate(RequestModel):
    """PATCH /v1/admin/tenants/{id}: only the fields given change."""

    plan: str | None = Field(None, min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_-]*$")
    max_in_flight: InFlight | None = None
    requests_per_minute: PerMinute | None = None
    subject_requests_per_minute: PerMinute | None = None
    allowed_origins: list[Origin] | None = Field(
        None, max_length=20,
        description="Web origins (`https://app.example.com`) whose pages may use this tenant's client "
        "tokens; replaces the list.",
    )  # fmt: skip


class Account(BaseModel):
    """GET /v1/account."""

    tenant_id: str
    name: str
    plan: str
    balance: int = Field(description="Credits; whole numbers only.")
    limits: Limits
    in_flight: int = Field(description="Images queued or running now (single and batch items).")
    generations_in_flight: int = Field(description="Single generations queued or running (the limited ones).")
    images_this_month: int


class LedgerEntry(BaseModel):
    """One change of the balance."""

    id: str
    delta: int
    reason: str
    reference: str
    note: str = ""
    balance_after: int | None = Field(
        None,
        description="The balance just after this entry, as read when it was made; absent for a single "
        "generation's debit or refund, which touches one slice of the balance and reads no other.",
    )
    created_at: str


class LedgerPage(BaseModel):
    """Entries, newest first."""

    entries: list[LedgerEntry]
    next_page_token: str | None = None


class ApiKey(BaseModel):
    """A key as listed: never the secret."""

    key_id: str
    name: str
    prefix: str
    created_at: str
    revoked_at: str | None = None


class NewApiKey(ApiKey):
    """A key just created: the secret is shown this once."""

    api_key: str


class Tenant(BaseModel):
    """A tenant as an operator sees it."""

    tenant_id: str
    name: str
    plan: str
    balance: int
    limits: Limits
    allowed_origins: list[str] = Field(description="Origins whose pages may use client tokens.")
    keys: list[ApiKey]


class TenantCreate(RequestModel):
    """POST /v1/admin/tenants."""

    name: str = Field(min_length=1, max_length=200, pattern=NOT_BLANK, description="Not only whitespace.")
    credits: Credits = 0
    max_in_flight: InFlight | None = None
    requests_per_minute: PerMinute | None = None

    def limits(self) -> dict[str, int]:
        """The limits given (the plan's defaults apply to the others)."""
        return self.model_dump(include={"max_in_flight", "requests_per_minute"}, exclude_none=True)


class CreditGrant(RequestModel):
    """POST /v1/admin/tenants/{id}/credits."""

    credits: GrantSize
    reason: str = Field(min_length=1, max_length=500, pattern=NOT_BLANK)


class KeyCreate(RequestModel):
    """POST /v1/admin/tenants/{id}/keys."""

    name: str = Field(min_length=1, max_length=100, pattern=NOT_BLANK)


class CreatedTenant(BaseModel):
    """A tenant just created, with its first API key (shown this once)."""

    tenant_id: str
    api_key: str


class KeyList(BaseModel):
    """A tenant's keys (never their secrets)."""

    keys: list[ApiKey]


class Economics(BaseModel):
    """GET /v1/admin/tenants/{id}/economics: what a tenant bought and was charged against what its
    images cost lote at the model's list prices, over a range."""

    tenant_id: str
    from_: str = Field(alias="from", serialization_alias="from")
    to: str
    credits: dict[str, int] = Field(
        description="Ledger entries in the range by reason (purchase: credits sold; debit: charged, "
        "as a positive number; refund, grant, clawback, dispute, reinstated)."
    )
    images: int = Field(description="Images that finished in the range.")
    model_spend_usd: float = Field(description="What those images' model calls cost at list prices.")
    model_usd_per_credit_charged: float | None = Field(
        None, description="Model spend per credit charged net of refunds: compare with a credit's price."
    )
    payments: dict[str, dict[str, int]] = Field(
        description="Stripe payments of all time by currency: amount paid and refunded (minor units)."
    )
