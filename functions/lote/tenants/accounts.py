"""Accounts: balance, plan, limits, usage, keys and the ledger, for tenants and for operators."""

from __future__ import annotations

import datetime as dt
from typing import Any

from lote import bulk, ids, timeutil
from lote.billing import credits, ledger, purse
from lote.errors import InvalidRequest, NotFound
from lote.services import Services
from lote.statuses import IN_FLIGHT
from lote.tenants import limits, store
from lote.tenants.documents import TenantDoc
from lote.tenants.schemas import (
    Account,
    ApiKey,
    Economics,
    LedgerEntry,
    LedgerPage,
    Limits,
    NewApiKey,
    PlanUpdate,
    Tenant,
)  # fmt: skip
from lote.tenants.service import Caller
from lote.usage.schemas import RangeQuery


def _tenant(services: Services, tenant_id: str) -> TenantDoc:
    found = store.get_tenant(services.firestore.db, tenant_id) if ids.looks_like(tenant_id, "ten") else None
    if found is None:
        raise NotFound(f"no tenant {tenant_id[:64]!r}", {"id": tenant_id[:64]})
    return found


def _limits(tenant: TenantDoc) -> Limits:
    return Limits(**store.limits_of(tenant))


def _key(doc: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=doc["key_id"], name=doc["name"], prefix=doc["prefix"],
        created_at=timeutil.iso(doc["created_at"]) or "", revoked_at=timeutil.iso(doc.get("revoked_at")),
    )  # fmt: skip


def account(services: Services, caller: Caller) -> Account:
    """The caller's account; usage from count() queries, never reading jobs."""
    from google.cloud.firestore import FieldFilter

    tenant = _tenant(services, caller.tenant_id)
    jobs = services.firestore.db.collection("jobs").where(
        filter=FieldFilter("tenant_id", "==", caller.tenant_id)
    )
    in_flight = sum(bulk.count(jobs.where(filter=FieldFilter("status", "==", s))) for s in IN_FLIGHT)
    this_month = bulk.count(jobs.where(filter=FieldFilter("created_at", ">=", month_start(timeutil.now()))))
    return Account(
        tenant_id=caller.tenant_id, name=tenant["name"], plan=tenant.get("plan", store.DEFAULT_PLAN),
        balance=_balance(services, caller.tenant_id), limits=_limits(tenant),
        in_flight=in_flight, images_this_month=this_month,
        generations_in_flight=limits.singles_in_flight(services.firestore.db, caller.tenant_id),
    )  # fmt: skip


def _balance(services: Services, tenant_id: str) -> int:
    """The whole balance: the tenant document's part and its purse slices' (billing/purse.py)."""
    found = purse.read(services.firestore.db, tenant_id)
    return found.balance if found is not None else 0


def ledger_page(services: Services, tenant_id: str, token: str | None, size: int = 100) -> LedgerPage:
    """Ledger entries newest first; the page token is the last entry's id."""
    if token is not None and not token.replace("-", "").replace("_", "").isalnum():
        raise InvalidRequest("page_token is not valid", {"field": "page_token"})
    found = ledger.page(services.firestore.db, tenant_id, size, token)
    if found is None:
        raise InvalidRequest("page_token is not valid: no such entry", {"field": "page_token"})
    entries = []
    for snapshot in found:
        entry = snapshot.to_dict() or {}
        entries.append(
            LedgerEntry(id=snapshot.id, **{**entry, "created_at": timeutil.iso(entry["created_at"]) or ""})
        )
    return LedgerPage(entries=entries, next_page_token=found[-1].id if len(found) == size else None)


def show_tenant(services: Services, tenant_id: str) -> Tenant:
    """A tenant with its keys (never their secrets)."""
    tenant = _tenant(services, tenant_id)
    keys = [_key(s.to_dict() or {}) for s in store.keys(services.firestore.db, tenant_id)]
    return Tenant(
        tenant_id=tenant_id, name=tenant["name"], plan=tenant.get("plan", store.DEFAULT_PLAN),
        balance=_balance(services, tenant_id), limits=_limits(tenant),
        allowed_origins=list(tenant.get("allowed_origins") or []), keys=keys,
    )  # fmt: skip


def set_plan(services: Services, tenant_id: str, update: PlanUpdate) -> Tenant:
    """Change a tenant's plan or limits; the next request of each key sees them."""
    _tenant(services, tenant_id)
    changes = update.model_dump(exclude_none=True, exclude={"plan", "allowed_origins"})
    origins = None if update.allowed_origins is None else sorted({o.lower() for o in update.allowed_origins})
    if store.set_plan(services.firestore.db, tenant_id, update.plan, changes, origins) is None:
        raise NotFound(f"no tenant {tenant_id!r}", {"id": tenant_id})
    if "max_in_flight" in changes:
        # Slots the purse's slices hold beyond what they use return, so a lower limit binds at once.
        purse.reclaim_slots(services.firestore.db, tenant_id)
    return show_tenant(services, tenant_id)


def grant(
    services: Services, tenant_id: str, amount: int, reason: str, grant_id: str | None = None
) -> LedgerEntry:
    """Add credits through the ledger; the same grant id is entered once."""
    _tenant(services, tenant_id)
    grant_id = grant_id or ids.new_id("grt")
    entry = credits.grant(services.firestore.db, tenant_id, grant_id, amount, reason)
    if entry is None:
        raise NotFound(f"no tenant {tenant_id!r}", {"id": tenant_id})
    created_at = timeutil.iso(entry["created_at"]) or ""
    return LedgerEntry(id=f"grant-{grant_id}", **{**entry, "created_at": created_at})


def create_key(services: Services, tenant_id: str, name: str) -> NewApiKey:
    """A new named key; the secret is in this answer only."""
    _tenant(services, tenant_id)
    secret, doc = store.add_key(services.firestore.db, tenant_id, name)
    return NewApiKey(api_key=secret, **_key(doc).model_dump())


def revoke_key(services: Services, tenant_id: str, key_id: str) -> ApiKey:
    """Revoke a key by its id (idempotent)."""
    doc = store.revoke_key_id(services.firestore.db, tenant_id, key_id)
    if doc is None:
        raise NotFound(f"tenant {tenant_id!r} has no key {key_id!r}", {"key_id": key_id})
    return _key(doc)


def month_start(now: dt.datetime) -> dt.datetime:
    """The first instant of `now`'s month (UTC)."""
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def economics(services: Services, tenant_id: str, query: RangeQuery) -> Economics:
    """Revenue against model spend for one tenant: the ledger by reason over the query's range
    (default the last 30 days; one aggregation query per reason), the usage rollups of the range's
    days (usage/store.py), and its Stripe payments."""
    from google.cloud.firestore import FieldFilter

    from lote.billing.stripe_events import PAYMENTS
    from lote.usage import rules as usage_rules
    from lote.usage import store as usage_store

    _tenant(services, tenant_id)
    start, end = query.bounds(dt.timedelta(days=30), max_days=400)
    db = services.firestore.db
    reasons: tuple[ledger.Reason, ...] = ("purchase", "debit", "refund", "grant", "clawback", "dispute",
                                          "reinstated")  # fmt: skip
    found = {reason: ledger.summed(db, tenant_id, reason, start, end) for reason in reasons}
    found["debit"] = -found["debit"]  # charged, as a positive number
    merged: dict[str, Any] = {}
    for rollup in usage_store.read(db, tenant_id, usage_rules.periods(start, end, "day")).values():
        usage_rules.merge(merged, rollup)
    whole = merged.get("all") or {}
    spend_usd = int(whole.get("model_micros", 0)) / 1e6
    net = found["debit"] - found["refund"]
    payments: dict[str, dict[str, int]] = {}
    for payment in db.collection(PAYMENTS).where(filter=FieldFilter("tenant_id", "==", tenant_id)).stream():
        doc = payment.to_dict() or {}
        into = payments.setdefault(str(doc.get("currency") or "usd"), {"paid": 0, "refunded": 0})
        into["paid"] += int(doc.get("amount_total") or 0)
        into["refunded"] += int(doc.get("refunded") or 0)
    return Economics.model_validate({
        "tenant_id": tenant_id, "from": timeutil.iso(start), "to": timeutil.iso(end), "credits": found,
        "images": int(whole.get("images", 0)), "model_spend_usd": round(spend_usd, 6),
        "model_usd_per_credit_charged": round(spend_usd / net, 6) if net > 0 else None, "payments": payments,
    })  # fmt: skip
