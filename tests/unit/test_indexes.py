"""Every composite query the code declares has its index in firestore.indexes.json (Terraform deploys it)."""

from __future__ import annotations

import importlib
import json
import pkgutil

import lote
from lote.tenants import limits
from lote_local.config import REPO_ROOT


def _declared_queries() -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Every module's INDEXES, found by walking the package (a new module cannot be forgotten)."""
    found = {}
    for info in pkgutil.walk_packages(lote.__path__, "lote."):
        module = importlib.import_module(info.name)
        if hasattr(module, "INDEXES"):
            found[info.name] = module.INDEXES
    return found


def test_every_composite_query_has_an_index():
    document = json.loads((REPO_ROOT / "firestore.indexes.json").read_text())
    declared = {
        (index["collectionGroup"], tuple(field["fieldPath"] for field in index["fields"]))
        for index in document["indexes"]
    }
    queries = _declared_queries()
    assert {"lote.jobs.recovery", "lote.batches.store", "lote.webhooks.store"} <= set(queries)
    for module, indexes in queries.items():
        for collection, fields in indexes:
            assert (collection, fields) in declared, (module, collection, fields)


def test_expiring_collections_have_ttl_policies():
    document = json.loads((REPO_ROOT / "firestore.indexes.json").read_text())
    ttl = {(o["collectionGroup"], o["fieldPath"]) for o in document["fieldOverrides"] if o.get("ttl")}
    expiring = {"idempotency", limits.RATE_HITS, "jobs", "batches", "webhook_deliveries"}
    assert {(collection, "expires_at") for collection in expiring} <= ttl
