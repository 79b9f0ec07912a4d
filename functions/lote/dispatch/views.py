"""The dispatcher as others read it: a lane's share for ETAs, the breaker for statuses, and the
operators' view of every pool (GET /v1/admin/scheduler)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from lote import timeutil
from lote.dispatch import lanes, spend, state
from lote.dispatch import service as dispatch
from lote.dispatch.control import Breaker
from lote.dispatch.schemas import (
    DaySpend,
    LastWindow,
    ModelSpend,
    Pool,
    Scheduler,
    TenantBacklog,
    TextPool,
    TierBacklog,
    TierSpend,
)
from lote.dispatch.share import Tier
from lote.dispatch.state import Outcome
from lote.services import Services

TEXT_WINDOW = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class LaneShare:
    """What a lane gets from the model now."""

    rate_per_s: float | None  # its releases per second (None: not releasing now)
    waiting_reason: str | None  # why work waits on the model (None: it does not)


def pool_facts(services: Services) -> state.Facts:
    """The image model pool's breaker and typical attempt time (cached for a second per process)."""
    return state.facts(services.firestore.db, dispatch.pool(services.settings))


def model_down(services: Services) -> bool:
    """Whether the image model's breaker is open (cached for a second per process)."""
    return pool_facts(services).opened_at is not None


def lane_share(services: Services, lane_id: str) -> LaneShare:
    """The lane's current release rate and whether work waits on the model."""
    doc = state.load(services.firestore.db, dispatch.pool(services.settings)) or {}
    rate = (doc.get("lane_rates") or {}).get(lane_id)
    return LaneShare(
        float(rate) if rate else None, waiting_reason(doc.get("breaker"), doc.get("blocked_reason"))
    )


def waiting_reason(breaker: str | None, blocked_reason: str | None) -> str | None:
    """Why held work is not sent to the model: it fails broadly (open), or the deployment cannot
    use it (blocked, with the operator trouble's code); None while the breaker is closed."""
    if breaker == Breaker.OPEN:
        return "model_unavailable"
    if breaker == Breaker.BLOCKED:
        return blocked_reason or "model_blocked"
    return None


def scheduler(services: Services) -> Scheduler:
    """Every pool's pace, breaker and backlog by tier and tenant (count() per active lane)."""
    db, settings = services.firestore.db, services.settings
    name = dispatch.pool(settings)
    doc = state.load(db, name) or {}
    bounds = dispatch.limits(settings)
    active = lanes.active(db, name)
    held = {lane.id: lanes.count_held(db, lane.id) for lane in active}
    rates: dict[str, float] = {k: float(v) for k, v in (doc.get("lane_rates") or {}).items()}
    tiers = {}
    for tier in Tier:
        mine = [lane.id for lane in active if lane.tier is tier]
        count, rate = sum(held[x] for x in mine), sum(rates.get(x, 0.0) for x in mine)
        wait = 0.0 if count == 0 else (count / rate if rate > 0 else None)
        estimate = None if wait is None else round(wait, 1)
        tiers[str(tier)] = TierBacklog(
            held=count, lanes=len(mine), release_per_s=round(rate, 3), estimated_wait_s=estimate
        )
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for lane in active:
        by_tenant[lane.tenant_id].append(lane.id)
    tenants = [
        TenantBacklog(
            tenant_id=tenant,
            held=sum(held[x] for x in ids),
            lanes=len(ids),
            release_per_s=round(sum(rates.get(x, 0.0) for x in ids), 3),
        )
        for tenant, ids in sorted(by_tenant.items())
    ]
    last = doc.get("last")
    window = None
    if last:
        window = _window(last["seconds"], last["successes"], last["quota_errors"], last["failures"])
    pool = Pool(
        pool=name, rate_per_s=round(float(doc.get("rate", bounds.start)), 3), start_per_s=bounds.start,
        ceiling_per_s=bounds.ceiling, breaker=doc.get("breaker", "closed"),
        opened_at=timeutil.iso(doc.get("opened_at")), last_window=window,
        blocked_reason=doc.get("blocked_reason") if doc.get("breaker") == Breaker.BLOCKED else None,
        in_queue=int(doc.get("in_queue") or 0), attempt_ms=doc.get("attempt_ms"),
        released_last_window=int(doc.get("released") or 0), tiers=tiers, tenants=tenants,
        spend=_spend(doc.get("spend") or {}), updated_at=timeutil.iso(doc.get("run_at")),
    )  # fmt: skip
    batch_mode = state.load(services.firestore.db, lanes.BATCH_MODE) or {}
    online = _tier_spend(doc.get("spend_tiers") or {}, False)
    by_tier = online + _tier_spend(batch_mode.get("spend_tiers") or {}, True)
    return Scheduler(pools=[pool], text_pools=[_text_pool(services)], spend_by_tier=by_tier)


def _tier_spend(days: dict[str, dict[str, dict[str, dict[str, int]]]], batch_mode: bool) -> list[TierSpend]:
    """Spend by tier over the stored days, priced (batch mode at its share of the price)."""
    calls: dict[str, int] = defaultdict(int)
    cents: dict[str, float] = defaultdict(float)
    for tiers in days.values():
        for tier, models in tiers.items():
            for model, counts in models.items():
                calls[tier] += int(counts.get("calls", 0))
                cents[tier] += spend.cents(model, counts, batch_mode) or 0.0
    path: Literal["online", "batch_mode"] = "batch_mode" if batch_mode else "online"
    return [
        TierSpend(tier=t, path=path, calls=calls[t], estimated_usd=round(cents[t] / 100, 4))
        for t in sorted(calls)
    ]


def _spend(days: dict[str, dict[str, dict[str, int]]]) -> list[DaySpend]:
    """The stored spend by day, priced."""
    found = []
    for day in sorted(days):
        models = []
        for model, counts in sorted(days[day].items()):
            cents = spend.cents(model, counts)
            usd = None if cents is None else round(cents / 100, 4)
            models.append(ModelSpend(model=model, **{k: int(counts.get(k, 0)) for k in spend.FIELDS},
                                     estimated_usd=usd))  # fmt: skip
        total = round(sum(m.estimated_usd or 0 for m in models), 4)
        found.append(DaySpend(day=day, models=models, estimated_usd=total))
    return found


def _window(seconds: float, successes: int, quota_errors: int, failures: int) -> LastWindow:
    calls = int(successes) + int(quota_errors) + int(failures)
    return LastWindow(
        seconds=round(float(seconds), 3), successes=successes, quota_errors=quota_errors, failures=failures,
        quota_error_share=round(int(quota_errors) / calls, 3) if calls else 0.0,
    )  # fmt: skip


def _text_pool(services: Services) -> TextPool:
    """The text model's last minute, read from the calls its attempts recorded (one query)."""
    name, now = dispatch.text_pool(services.settings), timeutil.now()
    tally = state.calls_between(services.firestore.db, name, now - TEXT_WINDOW, now).tally
    counts = [tally[Outcome.SUCCESS], tally[Outcome.QUOTA], tally[Outcome.FAILURE]]
    return TextPool(pool=name, last_minute=_window(TEXT_WINDOW.total_seconds(), *counts))
