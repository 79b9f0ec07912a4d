"""Request and response models of accounts, keys, the ledger and the admin routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lote.validation import RequestModel


class Limits(BaseModel):
    """What a plan allows."""

    max_in_flight: int = Field(
        description="Single generations queued or running at once (429 beyond); batch items queue instead."
    )
    requests_per_minute: int = Field(description="Requests per API key per minute (429 beyond).")


class PlanUpdate(RequestModel):
    """PATCH /v1/admin/tenants/{id}: only the fields given change."""

    plan: str | None = Field(None, min_length=1, max_length=50)
    max_in_flight: int | None = Field(None, ge=1, le=100_000)
    requests_per_minute: int | None = Field(None, ge=1, le=1_000_000)


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
    balance_after: int
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
    keys: list[ApiKey]


class TenantCreate(RequestModel):
    """POST /v1/admin/tenants."""

    name: str = Field(min_length=1, max_length=200)
    credits: int = Field(0, ge=0)
    max_in_flight: int | None = Field(None, ge=1, le=100_000)
    requests_per_minute: int | None = Field(None, ge=1, le=1_000_000)

    def limits(self) -> dict[str, int]:
        """The limits given (the plan's defaults apply to the others)."""
        return self.model_dump(include={"max_in_flight", "requests_per_minute"}, exclude_none=True)


class CreditGrant(RequestModel):
    """POST /v1/admin/tenants/{id}/credits."""

    credits: int = Field(gt=0, le=10_000_000)
    reason: str = Field(min_length=1, max_length=500)


class KeyCreate(RequestModel):
    """POST /v1/admin/tenants/{id}/keys."""

    name: str = Field(min_length=1, max_length=100)
