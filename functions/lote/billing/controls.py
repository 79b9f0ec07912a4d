"""A tenant's spend controls as the API shows and changes them (the rules: billing/spend.py)."""

from __future__ import annotations

from lote import timeutil
from lote.billing import ledger, spend
from lote.billing.schemas import SpendControls, SpendControlsUpdate
from lote.errors import NotFound
from lote.services import Services
from lote.webhooks import urls


def show(services: Services, tenant_id: str) -> SpendControls:
    """The caller's controls, and what was charged this day and month (two aggregation queries)."""
    db = services.firestore.db
    doc = ledger.tenant_ref(db, tenant_id).get().to_dict()
    if doc is None:
        raise NotFound(f"no tenant {tenant_id!r}", {"id": tenant_id})
    caps, today = spend.caps_of(doc), spend.day_key(timeutil.now())
    charged_today = spend.charged(db, tenant_id, spend.day_start(today))
    charged_month = spend.charged(db, tenant_id, spend.month_start(today[:7]))
    return SpendControls(
        daily_cap=caps.daily, monthly_cap=caps.monthly, low_balance_threshold=caps.low_balance,
        webhook_url=(doc.get("caps") or {}).get("webhook_url"),
        charged_today=charged_today, charged_this_month=charged_month,
        low_balance=bool(doc.get(spend.WARNED)),
        day_resets_at=timeutil.iso(spend.next_day(today)) or "",
        month_resets_at=timeutil.iso(spend.next_month(today[:7])) or "",
    )  # fmt: skip


def update(services: Services, tenant_id: str, req: SpendControlsUpdate) -> SpendControls:
    """Change the fields given (null removes one); a cap binds the next charge."""
    urls.check(services.settings, req.webhook_url, "webhook_url")
    db = services.firestore.db
    stored = (ledger.tenant_ref(db, tenant_id).get().to_dict() or {}).get("caps") or {}
    current = {"daily_cap": stored.get("daily"), "monthly_cap": stored.get("monthly"),
               "low_balance_threshold": stored.get("low_balance"),
               "webhook_url": stored.get("webhook_url")}  # fmt: skip
    merged = {**current, **req.model_dump(include=req.model_fields_set)}
    caps = spend.Caps(merged["daily_cap"], merged["monthly_cap"], merged["low_balance_threshold"])
    if not spend.set_caps(db, tenant_id, caps, merged["webhook_url"], services.settings.purse_slices):
        raise NotFound(f"no tenant {tenant_id!r}", {"id": tenant_id})
    return show(services, tenant_id)
