"""The scheduler across conditions: a grid of scenarios played by bench/sim/world.py, each with the
small batch's and the singles' solo runs, judged against the goals of issue 23.

Per cell:
- quota share: successful calls per second while large work waited, over min(quota, ceiling);
- small: the small batch's time with the large work about, over its solo time, and over its
  physical floor (the model's latency plus its items at its fair share of the quota: one tenant's
  share among the tenants with work);
- singles: their median time over their solo median.
Goals: quota share ≥ 0.95; small work ≤ 2× the longer of its solo time and its floor (among 1,000
tenants its fair share is a thousandth of the quota: that wait is fairness, not the scheduler's
overhead); singles ≤ 2× solo.
"""

from __future__ import annotations

import itertools
import random
import statistics
from dataclasses import dataclass, replace

from bench.sim.world import Result, Scenario, run

QUOTAS = (2.0, 10.0, 50.0, 500.0)
LATENCIES = (0.5, 5.0, 30.0)
CEILINGS = (0.25, 1.0, 4.0)
TENANTS = (1, 10, 1000)
BIG = (1_000, 100_000)
SINGLES = (0.0, 5.0, 50.0)
ARRIVALS = ("early", "late")
MAX_ITEMS = 200_000
MAX_WORK_S = 3_600.0  # a cell's large work is capped at an hour of the quota, so the sweep stays minutes


@dataclass(frozen=True)
class Cell:
    """One cell's measurements."""

    scenario: Scenario
    arrival: str
    quota_share: float | None
    small_s: float | None
    small_solo_s: float | None
    floor_s: float
    singles_ratio: float | None
    breaker_open_s: float
    lost: int

    @property
    def small_vs_solo(self) -> float | None:
        return None if self.small_s is None or not self.small_solo_s else self.small_s / self.small_solo_s

    @property
    def small_vs_floor(self) -> float | None:
        return None if self.small_s is None else self.small_s / self.floor_s

    @property
    def small_vs_bound(self) -> float | None:
        """Its time over what it cannot beat: its solo time (the windows, the slowest of its
        calls), or its floor at its fair share, whichever is longer."""
        return None if self.small_s is None else self.small_s / max(self.floor_s, self.small_solo_s or 0.0)

    def misses(self) -> list[str]:
        """Which goals the cell misses, named."""
        found = []
        if self.quota_share is not None and self.quota_share < 0.95:
            found.append(f"quota share {self.quota_share:.2f}")
        if self.small_s is None:
            found.append("small batch unfinished")
        elif self.small_vs_bound is not None and self.small_vs_bound > 2:
            found.append(f"small {self.small_vs_bound:.1f}× max(solo, floor)")
        if self.singles_ratio is not None and self.singles_ratio > 2:
            found.append(f"singles {self.singles_ratio:.1f}× solo")
        if self.lost:
            found.append(f"{self.lost} unfinished")
        return found


def scenario(quota: float, latency: float, ceiling: float, tenants: int, big: int, singles: float,
             arrival: str, seed: int = 1) -> Scenario:  # fmt: skip
    """A cell's scenario, its large work capped to MAX_ITEMS and an hour of the quota."""
    per_tenant = max(10, min(big, MAX_ITEMS // tenants, int(quota * MAX_WORK_S / tenants)))
    work_s = per_tenant * tenants / min(quota, quota * ceiling)
    small_at = 5.0 if arrival == "early" else max(5.0, 0.6 * work_s)
    singles = min(singles, quota / 2)  # more singles than half the quota is overload, not scheduling
    return Scenario(quota=quota, latency_s=latency, ceiling_ratio=ceiling, tenants=tenants, big=per_tenant,
                    small_at=small_at, singles_per_s=singles, singles_for_s=60.0, seed=seed,
                    horizon_s=work_s * 3 + 4 * 3600)  # fmt: skip


def measure(s: Scenario, arrival: str) -> Cell:
    """Play the cell, and its small batch and singles alone."""
    loaded = run(s)
    solo = run(replace(s, tenants=0, big=0, small_at=5.0, singles_per_s=0.0))
    singles_solo = run(replace(s, tenants=0, big=0, small=0, small_at=5.0)) if s.singles_per_s else None
    share_of_quota = min(s.quota, s.ceiling) / (s.tenants + 1)
    floor = s.latency_s + s.small / share_of_quota
    singles_ratio = None
    if singles_solo is not None and loaded.singles_ms and singles_solo.singles_ms:
        singles_ratio = statistics.median(loaded.singles_ms) / statistics.median(singles_solo.singles_ms)
    return Cell(s, arrival, loaded.quota_share, loaded.small_s, solo.small_s, floor, singles_ratio,
                loaded.breaker_open_s, loaded.lost)  # fmt: skip


def one_at_a_time() -> list[tuple[Scenario, str]]:
    """Each dimension swept around a base cell."""
    base = {"quota": 10.0, "latency": 5.0, "ceiling": 1.5, "tenants": 10, "big": 1_000, "singles": 0.0,
            "arrival": "early"}  # fmt: skip
    axes = {"quota": QUOTAS, "latency": LATENCIES, "ceiling": CEILINGS, "tenants": TENANTS, "big": BIG,
            "singles": SINGLES, "arrival": ARRIVALS}  # fmt: skip
    cells = []
    for name, values in axes.items():
        for value in values:
            chosen = {**base, name: value}
            cells.append((scenario(**chosen), str(chosen["arrival"])))  # type: ignore[arg-type]
    return cells


def sampled(n: int, seed: int = 23) -> list[tuple[Scenario, str]]:
    """`n` cells drawn from the whole product of the axes."""
    product = list(itertools.product(QUOTAS, LATENCIES, CEILINGS, TENANTS, BIG, SINGLES, ARRIVALS))
    chosen = random.Random(seed).sample(product, n)
    return [(scenario(*values), values[-1]) for values in chosen]


SMALL_GRID = [  # `make test`: a few cells that each goal depends on
    (scenario(10.0, 2.0, 1.5, 1, 1_000, 0.0, "early"), "early"),
    (scenario(10.0, 2.0, 4.0, 1, 1_000, 0.0, "late"), "late"),
    (scenario(50.0, 5.0, 0.25, 10, 1_000, 5.0, "early"), "early"),
    (scenario(2.0, 30.0, 1.0, 10, 1_000, 0.0, "late"), "late"),
]


def sweep(cells: list[tuple[Scenario, str]]) -> list[Cell]:
    """Measure every cell."""
    return [measure(s, arrival) for s, arrival in cells]


@dataclass(frozen=True)
class Summary:
    """The sweep in a few figures: worst values and the cells that miss a goal."""

    cells: int
    quota_share_min: float | None
    quota_share_median: float | None
    small_vs_bound_max: float | None
    small_vs_bound_median: float | None
    singles_ratio_max: float | None
    missing: list[tuple[str, list[str]]]


def summary(cells: list[Cell]) -> Summary:
    """The sweep's worst and median figures, and the cells that miss a goal."""
    shares = [c.quota_share for c in cells if c.quota_share is not None]
    bounds = [c.small_vs_bound for c in cells if c.small_vs_bound is not None]
    singles = [c.singles_ratio for c in cells if c.singles_ratio is not None]
    return Summary(
        len(cells),
        min(shares) if shares else None,
        statistics.median(shares) if shares else None,
        max(bounds) if bounds else None,
        statistics.median(bounds) if bounds else None,
        max(singles) if singles else None,
        [(describe(c), c.misses()) for c in cells if c.misses()],
    )


def describe(c: Cell) -> str:
    """A cell's conditions, briefly."""
    s = c.scenario
    return (f"quota {s.quota:g}/s, latency {s.latency_s:g} s, ceiling {s.ceiling_ratio:g}×, {s.tenants} tenants × "
            f"{s.big:,}, singles {s.singles_per_s:g}/s, small {c.arrival}")  # fmt: skip


def result_of(r: Result) -> dict[str, object]:
    """A run, for a look from a shell."""
    return {"small_s": r.small_s, "share": r.quota_share, "big_done_s": r.big_done_s, "calls": dict(r.calls),
            "lost": r.lost, "breaker_open_s": r.breaker_open_s, "events": r.events}  # fmt: skip


@dataclass(frozen=True)
class Recovery:
    """A faulty run against its clean twin: when the last image that could succeed did, how long
    the breaker was open, and what never finished."""

    name: str
    legacy: bool
    settled_s: float
    clean_s: float
    breaker_open_s: float
    lost: int
    small_s: float | None

    @property
    def slowdown(self) -> float:
        return self.settled_s / self.clean_s if self.clean_s else float("inf")


FAULTS: dict[str, dict[str, object]] = {
    # As the chaos run: jobs that time out on their own, the worker killed four times.
    "5% of items time out, 4 crashes": {"failing_share": 0.05, "fail_after_s": 3.0,
                                        "crashes": [20.0, 40.0, 60.0, 80.0]},
    "2% of items time out": {"failing_share": 0.02, "fail_after_s": 3.0},
    "a 60 s outage": {"outages": [(40.0, 60.0)]},
    "a 60 s outage, 2% of items time out": {"outages": [(40.0, 60.0)], "failing_share": 0.02, "fail_after_s": 3.0},
}  # fmt: skip
RECOVERY_BASE: dict[str, object] = {"latency_s": 1.0, "tenants": 1, "big": 500, "lease_s": 15.0, "sweep_s": 5.0,
                                    "repair_after_s": 10.0}  # fmt: skip


def recovery(quotas: tuple[float, ...] = (2.0, 5.0, 20.0)) -> list[Recovery]:
    """Every fault at each quota, with the breaker's rules before issue 23 and now (chaos-test
    settings: 15 s leases, a sweep every 5 s)."""
    found = []
    for quota in quotas:
        clean = run(Scenario(quota=quota, **RECOVERY_BASE))  # type: ignore[arg-type]
        for name, faults in FAULTS.items():
            for legacy in (True, False):
                r = run(Scenario(quota=quota, legacy=legacy, **RECOVERY_BASE, **faults))  # type: ignore[arg-type]
                found.append(Recovery(f"quota {quota:g}/s, {name}", legacy, r.last_success_s,
                                      clean.last_success_s, r.breaker_open_s, r.lost, r.small_s))  # fmt: skip
    return found


def section(cells: list[Cell], recovered: list[Recovery]) -> str:
    """The markdown section for RESULTS.md."""
    found = summary(cells)
    rows = []
    for c in sorted(cells, key=lambda c: (c.misses() == [], c.quota_share or 1.0)):
        rows.append(
            f"| {describe(c)} | {_fmt(c.quota_share, 3)} | {_fmt(c.small_s, 1)} s | {_fmt(c.small_solo_s, 1)} s | "
            f"{c.floor_s:.1f} s | {_fmt(c.small_vs_bound, 2)} | {_fmt(c.singles_ratio, 2)} | "
            f"{'; '.join(c.misses()) or 'ok'} |"
        )
    recovery_rows = [
        f"| {r.name} | {'before' if r.legacy else 'now'} | {r.settled_s:,.0f} s | {r.clean_s:,.0f} s | "
        f"{r.breaker_open_s:,.0f} s | {r.lost} |"
        for r in recovered
    ]
    return "\n".join(
        [
            "## The scheduler across conditions: simulator (issue 23)",
            "",
            "`bench/sim/` plays lote's own rules (controller, budget, fair split, retry and stop rules) against a "
            "model of Cloud Tasks and of Gemini's quota (429 above a token bucket), latency (log-normal), outages, "
            "items that fail alone, worker crashes and the repair sweep. Each cell: large batches of N tenants, a "
            "10-item batch of another tenant arriving early (5 s) or late (60% into the work), singles of a third. "
            "Quota share: calls the model admitted while large work waited, over min(quota, ceiling). Small: its "
            "time, over the longer of its solo time and its floor (latency + 10 items at its fair share of the quota).",
            "",
            f"{found.cells} cells (every axis swept around a base cell, and a sample of the whole product): quota "
            f"share min **{_fmt(found.quota_share_min, 3)}**, median {_fmt(found.quota_share_median, 3)}; small "
            f"work max **{_fmt(found.small_vs_bound_max, 2)}×** its bound, median "
            f"{_fmt(found.small_vs_bound_median, 2)}×; singles max {_fmt(found.singles_ratio_max, 2)}× solo. "
            f"Cells that miss a goal: {len(found.missing)} (first in the table, with the reason).",
            "",
            "| cell | quota share | small | small solo | floor | small / bound | singles / solo | verdict |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            "Recovery (chaos-test settings: 15 s leases, a sweep every 5 s; 500 items, latency 1 s): when the last "
            "image that could succeed did, against the same run without faults, with the breaker's and the "
            "release's rules before this issue and now.",
            "",
            "| faults | rules | last success | clean run | breaker open | never finished |",
            "|---|---|---:|---:|---:|---:|",
            *recovery_rows,
            "",
        ]
    )


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def run_all(sample: int = 20) -> str:
    """`python -m bench.run sim`: the sweep and the recovery runs. 20 sampled cells keep it about ten
    minutes on 2 cores (a cell of 1,000 tenants plays ~1,800 windows over 1,000 lanes: minutes each);
    `run_all(60)` is the wider sweep."""
    return section(sweep(one_at_a_time() + sampled(sample)), recovery())
