"""Authenticating API keys and creating tenants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lote.errors import Forbidden, InvalidRequest, Unauthenticated
from lote.services import Services
from lote.tenants import store


class InsufficientScope(Forbidden):
    """A client token asked for something its scopes do not allow."""

    code = "insufficient_scope"


class ApiKeyRequired(Forbidden):
    """Only the tenant's own server (its API key) may do this, never a client token."""

    code = "api_key_required"


@dataclass(frozen=True)
class Caller:
    """Who a request acts for: a tenant's API key, or a client token for one of its end users."""

    tenant_id: str
    key_id: str
    max_in_flight: int = store.DEFAULT_LIMITS["max_in_flight"]
    requests_per_minute: int = store.DEFAULT_LIMITS["requests_per_minute"]
    subject: str | None = None  # a client token's end user: it sees only the jobs made as them
    scopes: frozenset[str] | None = None  # a client token's scopes; None for an API key (all)
    token_id: str | None = None

    @property
    def owner(self) -> str:
        """Whose namespace idempotency keys live in: the tenant, or the token's end user."""
        return self.tenant_id if self.subject is None else f"{self.tenant_id}/{self.subject}"

    def require(self, scope: str) -> Caller:
        """The caller, if it may act in `scope`; 403 `insufficient_scope` for a token without it."""
        if self.scopes is not None and scope not in self.scopes:
            raise InsufficientScope(f"this token lacks the scope {scope}", {"scope": scope,
                                    "scopes": sorted(self.scopes)})  # fmt: skip
        return self

    def require_key(self) -> Caller:
        """The caller, if it is an API key; 403 `api_key_required` for a client token."""
        if self.token_id is not None:
            raise ApiKeyRequired("this needs your API key, from your server; client tokens may not")
        return self

    def sees(self, job: Mapping[str, Any]) -> bool:
        """Whether a job is this caller's: its tenant's, and for a token, made as its subject, or
        a batch item while the token may read batches (batches are the partner's, not a subject's)."""
        if job.get("tenant_id") != self.tenant_id:
            return False
        if self.subject is None or job.get("subject") == self.subject:
            return True
        return job.get("batch_id") is not None and "batches:read" in (self.scopes or ())


def bearer(authorization: str | None) -> str:
    """The credential in `Authorization: Bearer <credential>`; 401 when there is none."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(
            "missing credentials: send `Authorization: Bearer <API key or client token>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return secret.strip()


def caller_for(services: Services, hashed: str) -> Caller:
    """The caller behind a key hash, with its tenant's limits; 401 when unknown or revoked."""
    doc = store.get_key(services.firestore.db, hashed)
    if doc is None or doc.get("revoked_at") is not None:
        raise Unauthenticated("unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    tenant = store.get_tenant(services.firestore.db, doc["tenant_id"])
    if tenant is None:
        raise Unauthenticated("unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    limits = store.limits_of(tenant)
    return Caller(
        tenant_id=doc["tenant_id"],
        key_id=doc["key_id"],
        max_in_flight=int(limits["max_in_flight"]),
        requests_per_minute=int(limits["requests_per_minute"]),
    )


def create_tenant(
    services: Services, name: str, credits: int = 0, limits: dict[str, int] | None = None
) -> dict[str, str]:
    """A new tenant with one API key, shown here once."""
    if credits < 0:
        raise InvalidRequest("credits must not be negative", {"field": "credits"})
    # The name was checked by TenantCreate (not only whitespace, as the JSON Schema says): a
    # second, different notion of whitespace here would refuse what the contract accepts.
    tenant_id, secret = store.create_tenant(services.firestore.db, name, credits, limits)
    return {"tenant_id": tenant_id, "api_key": secret}
