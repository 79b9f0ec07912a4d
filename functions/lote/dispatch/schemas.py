"""The operators' view of dispatch (GET /v1/admin/scheduler)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

WAITING_REASON = (
    "While waiting_on_model, why: `model_unavailable` (the model fails broadly; only probes are sent), "
    "or the deployment cannot use the model until an operator acts: `model_key_invalid`, "
    "`model_access_denied`, `model_not_available`, `model_quota_per_day`, `model_quota_exhausted` "
    "(every call refused for 10 minutes at the slowest pace). The work waits; nothing is charged "
    "again or refunded."
)


class LastWindow(BaseModel):
    """What the model answered in the last control window."""

    seconds: float
    successes: int
    quota_errors: int
    failures: int
    quota_error_share: float = Field(description="Quota errors / calls (0 without calls).")


class TierBacklog(BaseModel):
    """Held work of one tier."""

    held: int = Field(description="Jobs held, not yet released (counted up to 100,000 per lane).")
    lanes: int
    release_per_s: float = Field(description="What the tier's lanes are released at now.")
    estimated_wait_s: float | None = Field(
        description="Seconds to release what the tier holds at its current share (null: it gets none now)."
    )


class TenantBacklog(BaseModel):
    """Held work of one tenant."""

    tenant_id: str
    held: int
    lanes: int
    release_per_s: float


class ModelSpend(BaseModel):
    """One model's calls of one day, as Gemini bills them (dispatch/spend.py)."""

    model: str
    calls: int = Field(description="Finished jobs' calls (a regenerated image counts again).")
    prompt_tokens: int
    output_tokens: int
    thinking_tokens: int = Field(description="Billed as output.")
    estimated_usd: float | None = Field(
        None, description="At the published price (dispatch/model_prices.json); null for an unpriced model."
    )


class DaySpend(BaseModel):
    """What the model calls of the jobs that finished on one UTC day cost."""

    day: str
    models: list[ModelSpend]
    estimated_usd: float


class Pool(BaseModel):
    """One model pool (one generation queue, one quota)."""

    pool: str
    rate_per_s: float = Field(description="The pace now: model calls released per second.")
    start_per_s: float
    ceiling_per_s: float
    breaker: Literal["closed", "open", "blocked"] = Field(
        description="closed: calls go out at the pace; open: the model fails broadly, only probes go out; "
        "blocked: the deployment cannot use the model (see `blocked_reason`), a probe a minute until one "
        "passes."
    )
    opened_at: str | None = None
    blocked_reason: str | None = Field(
        None,
        description="While blocked, the model's answer: `model_key_invalid`, `model_access_denied`, "
        "`model_not_available`, `model_quota_per_day` or `model_quota_exhausted` (429s no slowdown cleared).",
    )
    last_window: LastWindow | None = None
    in_queue: int = Field(description="Released jobs not started yet (or waiting for a retry).")
    attempt_ms: int | None = Field(
        None, description="Typical attempt that reached the model (smoothed median): single generations' ETA."
    )
    released_last_window: int
    tiers: dict[str, TierBacklog]
    tenants: list[TenantBacklog]
    spend: list[DaySpend] = Field(
        default_factory=list,
        description="Model spend of the jobs that finished each day (the last 8 UTC days, oldest first): "
        "tokens as Gemini reported them, dollars estimated at its published prices. Jobs that failed "
        "for good are not counted.",
    )
    updated_at: str | None = None


class TextPool(BaseModel):
    """The text model's calls (a pipeline's analyze and verify steps): not paced by a dispatcher; a
    quota error defers its job by the model's RetryInfo delay, and never slows the image pool."""

    pool: str
    last_minute: LastWindow = Field(description="Attempts that ended on a text call in the last 60 s.")


class TierSpend(BaseModel):
    """What one tier's finished jobs cost in model calls over the kept days, by the path they took."""

    tier: str
    path: Literal["online", "batch_mode"] = Field(
        description="online: one call each at the standard price; batch_mode: Gemini's batch mode, billed at "
        "its share of it (dispatch/model_prices.json)."
    )
    calls: int
    estimated_usd: float


class Scheduler(BaseModel):
    """Every pool's dispatcher."""

    pools: list[Pool]
    text_pools: list[TextPool] = Field(default_factory=list)
    spend_by_tier: list[TierSpend] = Field(
        default_factory=list, description="Model spend of the last 8 UTC days by tier and path (estimated)."
    )
