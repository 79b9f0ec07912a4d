"""A capacity model to internet scale (issue 23): from the per-image operations measured by the
other benchmarks and the design's rules, what 10k, 1M and 10M images a day over 10, 1,000 and
100,000 tenants ask of each document, collection, queue and function, against the published limits
(shared/reference/gcp-facts.md), and what that costs per 1,000 images.

What is assumed, not measured: the busiest hour carries 3× the day's average rate; the busiest
tenant carries the larger of an even share and 10% of all images (one big partner); half of all
images are single generations (each polled or waited for once more than a batch item); a tenth of
the tenants have work waiting at any moment; Gemini answers in 8 s. Change them at the top of this file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench import costs

PEAK = 3.0  # busiest hour over the day's average
HOT_TENANT_SHARE = 0.10  # the busiest tenant's share of all images, at least
SINGLES_SHARE = 0.5
ACTIVE_TENANTS = 0.1  # share of tenants with held work (an active lane) at once
LANES_READ = 1_000  # lanes.active's limit
MODEL_WAIT_S = costs.MODEL_WAIT_S
DOC_WRITES_PER_S = 1.0  # Firestore's guidance for one document, sustained
SEQUENTIAL_INDEX_WRITES_PER_S = 500.0  # per collection with a sequential indexed field
QUEUE_DISPATCHES_PER_S = 500.0  # Cloud Tasks, per queue
# Measured (bench/RESULTS.md "Batches": billed operations per batch item, every handler run).
ITEM_READS, ITEM_WRITES = 4.18, 4.09
# A single, counted from its path: the api writes its rate hit, the job, its ledger entry, its purse
# slice and the enqueue mark; the worker its claim, its finish and the slice's increment.
SINGLE_READS, SINGLE_WRITES = 7.0, 8.0
JOB_WRITES_PER_IMAGE = 4.0  # of those, writes to the image's job document (create/enqueue, claim, finish)
SLICE_WRITES_PER_SINGLE = 2.0  # the admission and the end
RETRY_SHARE = 0.05  # extra deliveries per image: retries and quota holds
WINDOW_S = 2.0  # the dispatcher's window: dispatch/{pool} is written twice per window
API_CONCURRENCY, WORKER_CONCURRENCY = 40, 64
API_REQUEST_S = 0.1  # an admission or a poll, measured p50 on the local stack


@dataclass(frozen=True)
class Row:
    """One volume × tenants cell."""

    per_day: int
    tenants: int
    peak_images_per_s: float
    hot_slice_writes_per_s: float
    slices_needed: int
    dispatch_doc_writes_per_s: float
    jobs_collection_writes_per_s: float
    generation_dispatches_per_s: float
    queues_needed: int
    worker_instances: int
    api_instances: int
    per_1000_usd: float
    active_lanes: int

    def crossings(self, slices: int = 16) -> list[str]:
        """The published limits this cell crosses with the design as deployed."""
        found = []
        if self.slices_needed > slices:
            found.append(
                f"purse: {self.slices_needed} slices for its busiest tenant (LOTE_PURSE_SLICES={slices})"
            )
        if self.jobs_collection_writes_per_s > SEQUENTIAL_INDEX_WRITES_PER_S:
            found.append(
                f"jobs: {self.jobs_collection_writes_per_s:,.0f} writes/s over sequential indexed timestamps"
            )
        if self.queues_needed > 1:
            found.append(f"generation queue: {self.generation_dispatches_per_s:,.0f} dispatches/s")
        if self.active_lanes > LANES_READ:
            # Not a limit crossed any more: a round over the lanes (lanes.round_of_active) reaches
            # each at least once every `rounds` windows.
            rounds = -(-self.active_lanes // LANES_READ)
            found.append(
                f"(dispatcher: {self.active_lanes:,} active lanes, {LANES_READ:,} a window: each reached every "
                f"{rounds} windows)"
            )
        return found


def row(per_day: int, tenants: int) -> Row:
    """The cell's figures."""
    average = per_day / 86_400
    peak = average * PEAK
    hot_tenant = peak * max(1 / tenants, HOT_TENANT_SHARE)
    singles_hot = hot_tenant * SINGLES_SHARE
    slice_writes_total = singles_hot * SLICE_WRITES_PER_SINGLE
    slices_needed = max(1, math.ceil(slice_writes_total / DOC_WRITES_PER_S))
    reads = SINGLES_SHARE * SINGLE_READS + (1 - SINGLES_SHARE) * ITEM_READS
    writes = SINGLES_SHARE * SINGLE_WRITES + (1 - SINGLES_SHARE) * ITEM_WRITES
    firestore = 1000 * (reads * costs.PRICE["read"] + writes * costs.PRICE["write"])
    tasks = 1000 * (1 + RETRY_SHARE + 0.05) * costs.PRICE["task_op"]  # + fan-out, checker, ticks: ~5%
    worker = costs.function_per_1000(costs.deployed("worker"), MODEL_WAIT_S)
    dispatches = peak * (1 + RETRY_SHARE)
    api_requests = peak * (1 + SINGLES_SHARE)  # a submission, and a poll or a wait per single
    return Row(
        per_day=per_day, tenants=tenants, peak_images_per_s=peak,
        hot_slice_writes_per_s=slice_writes_total / 16, slices_needed=slices_needed,
        dispatch_doc_writes_per_s=2 / WINDOW_S, jobs_collection_writes_per_s=peak * JOB_WRITES_PER_IMAGE,
        generation_dispatches_per_s=dispatches, queues_needed=math.ceil(dispatches / QUEUE_DISPATCHES_PER_S),
        worker_instances=math.ceil(peak * MODEL_WAIT_S / WORKER_CONCURRENCY),
        api_instances=math.ceil(api_requests * API_REQUEST_S / API_CONCURRENCY),
        per_1000_usd=firestore + tasks + worker,
        # No more lanes than there are images waiting (at most ten minutes of them).
        active_lanes=int(min(tenants * ACTIVE_TENANTS, peak * 600)),
    )  # fmt: skip


VOLUMES = (10_000, 1_000_000, 10_000_000)
TENANTS = (10, 1_000, 100_000)


def table() -> list[Row]:
    """Every cell."""
    return [row(v, t) for v in VOLUMES for t in TENANTS]


def section() -> str:
    """The markdown section for RESULTS.md."""
    rows = []
    for r in table():
        crossed = "; ".join(r.crossings()) or "none"
        rows.append(
            f"| {r.per_day:,} | {r.tenants:,} | {r.peak_images_per_s:,.1f} | {r.hot_slice_writes_per_s:.2f} "
            f"({r.slices_needed}) | {r.dispatch_doc_writes_per_s:.0f} | {r.jobs_collection_writes_per_s:,.0f} | "
            f"{r.generation_dispatches_per_s:,.0f} | {r.worker_instances:,} | {r.api_instances:,} | "
            f"${r.per_1000_usd:.4f} | {crossed} |"
        )
    return "\n".join(
        [
            "## Capacity model to internet scale (issue 23)",
            "",
            "Computed by `bench/capacity.py` from the measured operations per image and the design's rules; "
            f"assumed: the busiest hour at {PEAK:g}× the day's average, the busiest tenant with the larger of an "
            f"even share and {HOT_TENANT_SHARE:.0%} of all images, {SINGLES_SHARE:.0%} singles, "
            f"{ACTIVE_TENANTS:.0%} of tenants with work waiting at once, Gemini at "
            f"{MODEL_WAIT_S:g} s. Limits: about {DOC_WRITES_PER_S:g} sustained write/s per document, "
            f"{SEQUENTIAL_INDEX_WRITES_PER_S:g} writes/s per collection with a sequential indexed field, "
            f"{QUEUE_DISPATCHES_PER_S:g} dispatches/s per queue.",
            "",
            "| images/day | tenants | peak images/s | writes/s per purse slice, busiest tenant (slices for ≤ 1/s) "
            "| dispatch/{pool} writes/s | jobs writes/s | generation dispatches/s | worker instances | api instances "
            "| per 1,000 images (Firestore, Tasks, worker) | limits crossed |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            *rows,
            "",
            "Hottest documents of the other kinds stay flat with volume: a batch document is written by its "
            "checker (every 2–60 s) and its refresh (at most every 15 s); a lane when it is activated or retired; "
            "`dispatch/{pool}` twice per window whatever the volume; rate hits and idempotency records are new "
            "documents. What the crossings need is in the decision note 2026-12-04-capacity.",
            "",
        ]
    )


if __name__ == "__main__":
    print(section())
