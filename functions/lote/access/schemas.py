"""Client tokens as the API reads and answers them."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from lote.validation import RequestModel, whole

if TYPE_CHECKING:
    TtlSeconds = int
    ImageCap = int
else:
    TtlSeconds, ImageCap = whole(60, 3600), whole(1, 100_000)

MAX_TTL_S = 3600
SUBJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"


class Scope(StrEnum):
    """What a client token may do. An API key may do all of it, and more (mint tokens, billing)."""

    GENERATIONS_CREATE = "generations:create"  # submit and cancel its subject's generations
    GENERATIONS_READ = "generations:read"  # read its subject's generations and their outputs
    UPLOADS_CREATE = "uploads:create"
    BATCHES_CREATE = "batches:create"
    BATCHES_READ = "batches:read"  # every batch of the tenant: batches belong to the partner
    BATCHES_WRITE = "batches:write"  # retry and cancel
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"  # redeliver
    ACCOUNT_READ = "account:read"


# The request's type spells the values out (strict parsing takes no str for an enum); a unit test
# ties it to Scope.
ScopeName = Literal[
    "generations:create", "generations:read", "uploads:create", "batches:create", "batches:read",
    "batches:write", "webhooks:read", "webhooks:write", "account:read",
]  # fmt: skip


class ClientTokenRequest(RequestModel):
    """POST /v1/client-tokens (API key only)."""

    subject: str = Field(
        pattern=SUBJECT_PATTERN,
        description="Your end user's id (1-128 letters, digits, `_ . : @ -`): the token sees only the "
        "generations made with this subject.",
    )
    scopes: list[ScopeName] = Field(min_length=1, max_length=len(Scope), description="What the token may do.")
    ttl_s: TtlSeconds = Field(900, description="Lifetime in seconds, 60 to 3600.")
    max_images: ImageCap | None = Field(
        None,
        description="At most this many images may be submitted with the token (charged to your credits).",
    )


class ClientToken(BaseModel):
    """A minted token: shown once; give it to the browser, never the API key."""

    id: str = Field(description="The token's id (`tok_…`), to revoke it.")
    token: str = Field(description="The signed token (a JWT): `Authorization: Bearer <token>`.")
    subject: str
    scopes: list[str]
    expires_at: str
    max_images: int | None = None


class RevokedToken(BaseModel):
    """POST /v1/client-tokens/{token_id}/revoke."""

    id: str
    subject: str
    revoked_at: str
