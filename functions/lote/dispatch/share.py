"""Who gets the next releases: fair share between tenants and batches, by tier (pure, no I/O).

Each window the dispatcher has a whole number of model calls to release. Lanes (a batch, or a
tenant's held single generations) get them by tier: interactive lanes first, then the weighted
tiers by deficit round robin, then economy with whatever is left. Within a weighted tier every
tenant gets the tier's weight, split evenly between its lanes, so a tenant with ten batches gets
no more than a tenant with one. Deficits carry the fractions a window could not grant, so small
budgets stay fair over a few windows.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_PASSES = 4  # rounds of the split: a drained lane's unused grant goes to the others


class Tier(StrEnum):
    """How urgent a lane's work is; a batch picks express, standard or economy."""

    INTERACTIVE = "interactive"  # single generations: never behind batch items
    EXPRESS = "express"
    STANDARD = "standard"
    ECONOMY = "economy"  # only what no other tier takes


def tier_of(job: Mapping[str, Any]) -> Tier:
    """A job's tier: its batch's priority, or interactive for a single generation."""
    return Tier(job.get("tier") or (Tier.STANDARD if job.get("batch_id") else Tier.INTERACTIVE))


@dataclass(frozen=True)
class Lane:
    """Held work of one batch (or one tenant's singles) waiting for release."""

    id: str
    tenant_id: str
    tier: Tier
    active_since: dt.datetime | None = None  # when it last became active: its oldest held work's age


@dataclass(frozen=True)
class Grants:
    """One round of the split: calls per lane, and every lane's deficit afterwards."""

    calls: dict[str, int]
    deficits: dict[str, float]


def weights(lanes: list[Lane], tier_weights: dict[Tier, float]) -> dict[str, float]:
    """Each lane's weight: its tier's weight, shared by the lanes of one tenant in that tier."""
    per_tenant: dict[tuple[str, Tier], int] = {}
    for lane in lanes:
        per_tenant[(lane.tenant_id, lane.tier)] = per_tenant.get((lane.tenant_id, lane.tier), 0) + 1
    return {
        lane.id: tier_weights.get(lane.tier, 0.0) / per_tenant[(lane.tenant_id, lane.tier)] for lane in lanes
    }


def next_class(lanes: list[Lane], tier_weights: dict[Tier, float]) -> list[Lane]:
    """The lanes that may take calls now: interactive ones if any, else those of a weighted tier,
    else economy (weight 0: spare capacity only)."""
    interactive = [lane for lane in lanes if lane.tier is Tier.INTERACTIVE]
    if interactive:
        return interactive
    weighted = [lane for lane in lanes if tier_weights.get(lane.tier, 0.0) > 0]
    return weighted or list(lanes)


def split(
    budget: int, lanes: list[Lane], deficits: dict[str, float], tier_weights: dict[Tier, float]
) -> Grants:
    """Share `budget` calls among the lanes of the first class that has any (next_class).

    Grants sum to the budget exactly; what a lane was owed but not granted stays in its deficit.
    """
    chosen = next_class(lanes, tier_weights)
    if budget <= 0 or not chosen:
        return Grants({}, dict(deficits))
    if chosen[0].tier is Tier.INTERACTIVE or all(tier_weights.get(x.tier, 0.0) <= 0 for x in chosen):
        shares = {lane.id: 1.0 for lane in chosen}
    else:
        shares = weights(chosen, tier_weights)
    total = sum(shares.values())
    owed = {lane: deficits.get(lane, 0.0) + budget * share / total for lane, share in shares.items()}
    calls = {lane: max(0, math.floor(amount)) for lane, amount in owed.items()}
    _round_to(budget, owed, calls)
    after = dict(deficits)
    after.update({lane: owed[lane] - calls[lane] for lane in owed})
    return Grants({lane: n for lane, n in calls.items() if n > 0}, after)


def _round_to(budget: int, owed: dict[str, float], calls: dict[str, int]) -> None:
    """Adjust `calls` in place to sum to `budget`, closest to `owed` (ties by lane id)."""
    gap = budget - sum(calls.values())
    while gap != 0:
        if gap > 0:
            lane = max(owed, key=lambda x: (owed[x] - calls[x], x))
            calls[lane] += 1
            gap -= 1
        else:
            candidates = [x for x in owed if calls[x] > 0]
            lane = min(candidates, key=lambda x: (owed[x] - calls[x], x))
            calls[lane] -= 1
            gap += 1


@dataclass(frozen=True)
class Released:
    """A window's release: jobs released per lane, the lanes found drained (a grant they could not
    fill), every lane's deficit after, and the calls of the budget left unreleased."""

    calls: dict[str, int]
    drained: frozenset[str]
    deficits: dict[str, float]
    left: int


def rounds(
    budget: int,
    lanes: list[Lane],
    deficits: dict[str, float],
    tier_weights: dict[Tier, float],
    take: Callable[[dict[str, int]], dict[str, int]],
) -> Released:
    """Release `budget` calls: split() between the lanes, `take` each round's grants (it releases up
    to that many of each lane's held jobs and says how many it did), and give what a drained lane
    could not use to the others, for up to MAX_PASSES rounds. The dispatcher's `take` creates
    tasks; the simulator's (bench/sim) pops its model of the lanes."""
    left, remaining = budget, list(lanes)
    released: dict[str, int] = {}
    drained: set[str] = set()
    for _ in range(MAX_PASSES):
        if left <= 0 or not remaining:
            break
        grants = split(left, remaining, deficits, tier_weights)
        deficits = grants.deficits
        if not grants.calls:
            break
        for lane_id, n in take(grants.calls).items():
            released[lane_id] = released.get(lane_id, 0) + n
            left -= n
            if n < grants.calls[lane_id]:
                drained.add(lane_id)
        remaining = [lane for lane in remaining if lane.id not in drained]
    return Released(released, frozenset(drained), deficits, left)
