"""Every composite query the code declares has its index in firestore.indexes.json (Terraform deploys it)."""

from __future__ import annotations

import json

from lote.batches import store as batch_store
from lote.jobs import store as job_store
from lote.tenants import limits
from lote.tenants import store as tenant_store
from lote.webhooks import store as webhook_store
from lote_local.config import REPO_ROOT


def test_every_composite_query_has_an_index():
    document = json.loads((REPO_ROOT / "firestore.indexes.json").read_text())
    declared = {
        (index["collectionGroup"], tuple(field["fieldPath"] for field in index["fields"]))
        for index in document["indexes"]
    }
    for collection, fields in (
        job_store.INDEXES
        + batch_store.INDEXES
        + tenant_store.INDEXES
        + limits.INDEXES
        + webhook_store.INDEXES
    ):
        assert (collection, fields) in declared


def test_expiring_collections_have_ttl_policies():
    document = json.loads((REPO_ROOT / "firestore.indexes.json").read_text())
    ttl = {(o["collectionGroup"], o["fieldPath"]) for o in document["fieldOverrides"] if o.get("ttl")}
    expiring = {"idempotency", limits.RATE_HITS, "jobs", "batches", "webhook_deliveries"}
    assert {(collection, "expires_at") for collection in expiring} <= ttl
