"""Firestore documents of tenants (`tenants/{id}`) and API keys (`api_keys/{sha256(key)}`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lote import ids, timeutil

if TYPE_CHECKING:
    from google.cloud import firestore

TENANTS = "tenants"
API_KEYS = "api_keys"


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


def create_tenant(db: firestore.Client, name: str, credits: int) -> tuple[str, str]:
    """Write a tenant and its first key in one batch; returns (tenant_id, api key)."""
    tenant_id = ids.new_id("ten")
    secret, key_hash, key_doc = new_key_doc(tenant_id, "default")
    batch = db.batch()
    batch.create(
        db.collection(TENANTS).document(tenant_id),
        {"name": name, "credits": credits, "created_at": timeutil.now()},
    )
    batch.create(db.collection(API_KEYS).document(key_hash), key_doc)
    batch.commit()
    return tenant_id, secret


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
