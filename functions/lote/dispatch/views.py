"""The dispatcher as others read it: a lane's share for ETAs, the breaker for statuses, and the
operators' view of every pool (GET /v1/admin/scheduler)."""

from __future__ import annotations

from dataclasses import dataclass

from lote.dispatch import service as dispatch
from lote.dispatch import state
from lote.dispatch.control import Breaker
from lote.services import Services


@dataclass(frozen=True)
class LaneShare:
    """What a lane gets from the model now."""

    rate_per_s: float | None  # its releases per second (None: not releasing now)
    waiting_on_model: bool


def model_down(services: Services) -> bool:
    """Whether the image model's breaker is open (cached for a second per process)."""
    return state.breaker_opened_at(services.firestore.db, dispatch.pool(services.settings)) is not None


def lane_share(services: Services, lane_id: str) -> LaneShare:
    """The lane's current release rate and whether work waits on the model."""
    doc = state.load(services.firestore.db, dispatch.pool(services.settings)) or {}
    rate = (doc.get("lane_rates") or {}).get(lane_id)
    return LaneShare(float(rate) if rate else None, doc.get("breaker") == Breaker.OPEN)
