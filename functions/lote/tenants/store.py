"""Firestore documents of tenants (`tenants/{id}`) and API keys (`api_keys/{sha256(key)}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lote import ids, timeutil
from lote.billing import credits as credits_module
from lote.billing import ledger
from lote.tenants.documents import TenantDoc, tenant_of

if TYPE_CHECKING:
    from google.cloud import firestore

TENANTS = ledger.TENANTS  # billing owns the balance on these documents
API_KEYS = "api_keys"
DEFAULT_PLAN = "standard"
DEFAULT_LIMITS = {"max_in_flight": 100, "requests_per_minute": 600, "subject_requests_per_minute": 120}
# Composite indexes of the queries below (firestore.indexes.json must hold each; a test checks).
INDEXES = [
    (API_KEYS, ("tenant_id", "created_at")),
    ("jobs", ("tenant_id", "status")),
    ("jobs", ("tenant_id", "created_at")),
]


def new_key_doc(tenant_id: str, name: str) -> tuple[str, str, dict[str, Any]]:
    """A fresh key: (secret shown once, document id = its hash, document)."""
    secret = "lote_sk_" + ids.new_id("k", 40).removeprefix("k_")
    key_id = ids.new_id("key", 16)
    doc = {
        "tenant_id": tenant_id,
        "key_id": key_id,
        "name": name,
        "prefix": secret[:12],
        "created_at": timeutil.now(),
        "revoked_at": None,
    }
    return secret, ids.sha256_hex(secret), doc


def create_tenant(
    db: firestore.Client, name: str, credits: int, limits: dict[str, int] | None = None
) -> tuple[str, str]:
    """Write a tenant, its first key and (for starting credits) its first ledger entry in one batch."""
    tenant_id = ids.new_id("ten")
    secret, key_hash, key_doc = new_key_doc(tenant_id, "default")
    now = timeutil.now()
    tenant_ref = db.collection(TENANTS).document(tenant_id)
    batch = db.batch()
    tenant = {
        "name": name,
        "plan": DEFAULT_PLAN,
        "limits": {**DEFAULT_LIMITS, **(limits or {})},
        "credits": credits,
        "created_at": now,
    }
    batch.create(tenant_ref, tenant)
    credits_module.opening_grant(batch, db, tenant_id, credits)
    batch.create(db.collection(API_KEYS).document(key_hash), key_doc)
    batch.commit()
    return tenant_id, secret


def set_plan(
    db: firestore.Client,
    tenant_id: str,
    plan: str | None,
    limits: dict[str, int],
    allowed_origins: list[str] | None = None,
) -> TenantDoc | None:
    """Change a tenant's plan, limits (dotted paths: other limits stay) and allowed origins (the
    list is replaced); None without the tenant."""
    from google.api_core.exceptions import NotFound

    changes: dict[str, Any] = {f"limits.{name}": value for name, value in limits.items()}
    if plan is not None:
        changes["plan"] = plan
    if allowed_origins is not None:
        changes["allowed_origins"] = allowed_origins
    ref = db.collection(TENANTS).document(tenant_id)
    try:
        if changes:
            ref.update(changes)
    except NotFound:
        return None
    return get_tenant(db, tenant_id)


def limits_of(tenant: TenantDoc) -> dict[str, Any]:
    """The tenant's limits: its own where it has them, else the deployment's defaults."""
    return {**DEFAULT_LIMITS, **dict(tenant.get("limits") or {})}


def get_tenant(db: firestore.Client, tenant_id: str) -> TenantDoc | None:
    """The tenant document, or None."""
    snapshot = db.collection(TENANTS).document(tenant_id).get()
    return tenant_of(snapshot.to_dict()) if snapshot.exists else None


def add_key(db: firestore.Client, tenant_id: str, name: str) -> tuple[str, dict[str, Any]]:
    """A new named key for a tenant: (secret shown once, key document)."""
    secret, key_hash, doc = new_key_doc(tenant_id, name)
    db.collection(API_KEYS).document(key_hash).create(doc)
    return secret, doc


def keys(db: firestore.Client, tenant_id: str) -> list[firestore.DocumentSnapshot]:
    """A tenant's keys, oldest first."""
    from google.cloud.firestore import FieldFilter

    query = (
        db.collection(API_KEYS).where(filter=FieldFilter("tenant_id", "==", tenant_id)).order_by("created_at")
    )
    return list(query.stream())


def revoke_key_id(db: firestore.Client, tenant_id: str, key_id: str) -> dict[str, Any] | None:
    """Revoke a tenant's key by its public id; None when the tenant has no such key."""
    for snapshot in keys(db, tenant_id):
        doc = snapshot.to_dict() or {}
        if doc.get("key_id") == key_id:
            if doc.get("revoked_at") is None:
                doc["revoked_at"] = timeutil.now()
                snapshot.reference.update({"revoked_at": doc["revoked_at"]})
            return doc
    return None


def get_key(db: firestore.Client, key_hash: str) -> dict[str, Any] | None:
    """The key document for a hash, or None."""
    snapshot = db.collection(API_KEYS).document(key_hash).get()
    return snapshot.to_dict() if snapshot.exists else None


def revoke_key(db: firestore.Client, secret: str) -> bool:
    """Mark a key revoked; False when there is no such key."""
    ref = db.collection(API_KEYS).document(ids.sha256_hex(secret))
    if not ref.get().exists:
        return False
    ref.update({"revoked_at": timeutil.now()})
    return True
