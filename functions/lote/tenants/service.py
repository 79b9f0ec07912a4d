"""Authenticating API keys and creating tenants."""

from __future__ import annotations

from dataclasses import dataclass

from lote import ids
from lote.errors import InvalidRequest, Unauthenticated
from lote.services import Services
from lote.tenants import store


@dataclass(frozen=True)
class Caller:
    """Who a request acts for."""

    tenant_id: str
    key_id: str
    max_in_flight: int = store.DEFAULT_LIMITS["max_in_flight"]
    requests_per_minute: int = store.DEFAULT_LIMITS["requests_per_minute"]


def key_hash(authorization: str | None) -> str:
    """The hash of the key in `Authorization: Bearer <key>`; 401 when there is none."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(
            "missing API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return ids.sha256_hex(secret.strip())


def caller_for(services: Services, hashed: str) -> Caller:
    """The caller behind a key hash, with its tenant's limits; 401 when unknown or revoked."""
    doc = store.get_key(services.firestore.db, hashed)
    if doc is None or doc.get("revoked_at") is not None:
        raise Unauthenticated("unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    tenant = store.get_tenant(services.firestore.db, doc["tenant_id"])
    if tenant is None:
        raise Unauthenticated("unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    limits = {**store.DEFAULT_LIMITS, **tenant.get("limits", {})}
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
