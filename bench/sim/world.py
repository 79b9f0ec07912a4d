"""A discrete-event model of lote's scheduling world, driven by lote's own pure rules.

What is lote's and runs unchanged: the controller (dispatch/control.py, through
dispatch/service.next_state), the release budget (dispatch/service.budget), the fair split and its
rounds (dispatch/share.rounds), the release bookkeeping (dispatch/service.release_record), the
retry rule (jobs/attempts.judge) and the queue's stop rule (retries.is_last_attempt).

What is modelled (our picture, not measured production behaviour; see the decision note):
- Cloud Tasks' generation queue: a token bucket at queue.yaml's rate (the ceiling) and burst,
  `max_concurrent`, tasks that run at their schedule time, retries after 500 with queue.yaml's
  backoff (min 2 s, doubling 4 times, max 300 s), a task deleted once its retries run out.
- The model: a token bucket at the true quota (Gemini's per-minute limits behave like one at the
  scale of seconds) that answers 429 RESOURCE_EXHAUSTED when empty; log-normal latency around a
  median; outages (every call fails); a share of jobs whose every call fails (a prompt the model
  chokes on), and crashes of the worker (attempts in flight vanish; their jobs wait for the lease
  and the repair sweep).
- lote's worker, as jobs/worker.py decides: success; a quota error holds the job again, attempt
  uncounted; a failure of work released before the breaker opened holds it again; any other
  failure is judged (500: the task retries with its backoff; the last attempt fails the job).
- The repair sweep every `sweep_s`: a running job whose lease expired gets a new task (retry count
  0, as a new task has), and a queued job whose task is gone a new one.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import math
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from lote import retries
from lote.dispatch import control, share
from lote.dispatch import service as dispatch
from lote.jobs import attempts
from lote.settings import Settings

EPOCH = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
MIN_BACKOFF_S, MAX_BACKOFF_S, MAX_DOUBLINGS = 2.0, 300.0, 4
OVERHEAD_S = 0.05  # claim and finish around a model call
QUOTA_ANSWER_S = 0.1  # how fast a 429 comes back


@dataclass
class Job:
    """One image."""

    id: int
    lane: str
    tier: share.Tier
    tenant: str
    created: float
    fails: bool = False  # every call of this job fails (a prompt the model chokes on)
    status: str = "held"  # held, queued, running, succeeded, failed
    gen: int = 0
    retry_count: int = 0  # of its current task
    cycle_start: float = 0.0  # released_at (or created_at): the queue's retry window starts here
    restarted: float = 0.0  # restarted_at: the sweep gave it a new task (recovery.breaker_start)
    failed_before: bool = False  # last_error: an earlier attempt failed
    in_backoff: bool = False  # queued for a retry after a failure (error_streak > 0)
    lease_until: float = 0.0
    finished: float | None = None
    attempts: int = 0


@dataclass
class Scenario:
    """One cell of the grid (and its variants)."""

    quota: float  # true model quota, calls/s
    latency_s: float  # median model latency
    ceiling_ratio: float = 1.5  # queue.yaml's rate (the ceiling, where the pace starts) / quota
    tenants: int = 1  # tenants with a large batch each
    big: int = 1_000  # items of each large batch
    small: int = 10  # items of the small batch (another tenant)
    small_at: float = 5.0  # when it arrives (s)
    singles_per_s: float = 0.0  # single generations, Poisson, from yet another tenant
    singles_for_s: float = 60.0
    failing_share: float = 0.0  # jobs whose every call fails ...
    fail_after_s: float | None = None  # ... after this long (a model timeout; default: the latency)
    outages: list[tuple[float, float]] = field(default_factory=list)  # (start, seconds)
    crashes: list[float] = field(default_factory=list)  # worker crashes
    horizon_s: float = 4 * 3600.0
    seed: int = 1
    window_s: float = 2.0
    sweep_s: float = 60.0
    repair_after_s: float = 10.0
    lease_s: float = 300.0
    max_attempts: int = 10
    max_retry_s: float = 1800.0
    legacy: bool = False  # the breaker's rules before issue 23 (for before/after figures)
    bucket: int | None = None  # queue.yaml bucket_size (default: the rate, at least 1)
    max_concurrent: int | None = None  # queue.yaml max_concurrent_requests (default: ample)

    @property
    def ceiling(self) -> float:
        return self.quota * self.ceiling_ratio


@dataclass
class Result:
    """What a run shows."""

    scenario: Scenario
    small_s: float | None  # small batch: submission to its last item finished
    singles_ms: list[float]
    big_done_s: float | None  # every large batch finished
    last_success_s: float  # the last image of large work that could succeed
    busy_s: float  # while large work was waiting for the model
    busy_successes: int  # calls the model admitted (an image or a failure) in that time
    failed: int
    succeeded: int
    lost: int  # jobs never finished by the horizon
    breaker_open_s: float
    calls: Counter[str]
    events: int

    @property
    def quota_share(self) -> float | None:
        """Successful calls per second while work waited, over what the quota and ceiling allow."""
        s = self.scenario
        if self.busy_s <= 0 or not s.big:
            return None
        return self.busy_successes / self.busy_s / min(s.quota, s.ceiling)


class World:
    """The event loop: `run()` plays the scenario to its end."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.rng = random.Random(scenario.seed)
        self.now = 0.0
        self.events: list[tuple[float, int, str, Any]] = []
        self.seq = itertools.count()
        self.jobs: list[Job] = []
        self.lanes: dict[str, deque[Job]] = {}
        self.lane_info: dict[str, share.Lane] = {}
        self.pending: list[tuple[float, int, Job, int]] = []  # tasks by schedule time
        self.tokens = float(self._bucket())
        self.tokens_at = 0.0
        self.quota_tokens = max(1.0, scenario.quota)
        self.quota_at = 0.0
        self.running_tasks = 0
        self.calls: list[tuple[float, str, bool, share.Tier, float]] = []  # (at, outcome, retry, tier, ms)
        self.state: dict[str, Any] | None = None
        self.last_tick = 0.0
        self.settings = Settings(
            dispatch_ceiling_rps=scenario.ceiling, dispatch_window_s=scenario.window_s,
            generation_max_attempts=scenario.max_attempts, generation_max_retry_s=int(scenario.max_retry_s),
        )  # fmt: skip
        self.bounds = dispatch.limits(self.settings)
        self.weights = {share.Tier(k): v for k, v in self.settings.tier_weights.items()}
        self.counts: Counter[str] = Counter()
        self.breaker_open_s = 0.0
        self.n = 0
        self.queued = 0  # jobs with a task, not started: what the queue holds
        self.backoff = 0  # of those, waiting out a retry's backoff (error_streak > 0)
        self.cursor = 0  # calls before it were seen by an earlier tick
        self.unfinished = 0
        self.last_big_release = 0.0

    # --- the loop ---------------------------------------------------------------------------

    def at(self, when: float, kind: str, what: Any = None) -> None:
        heapq.heappush(self.events, (when, next(self.seq), kind, what))

    def run(self) -> Result:
        s = self.s
        for t in range(s.tenants):
            for _ in range(s.big):
                self._new_job(f"big-{t}", share.Tier.STANDARD, f"tenant-{t}", 0.0, held=True)
        self.at(s.small_at, "small")
        if s.singles_per_s > 0:
            self.at(self.rng.expovariate(s.singles_per_s), "single")
        for crash in s.crashes:
            self.at(crash, "crash")
        self.at(0.0, "tick")
        self.at(s.sweep_s, "sweep")
        while self.events:
            when, _, kind, what = heapq.heappop(self.events)
            if when > s.horizon_s:
                break
            self.now = when
            self.n += 1
            getattr(self, f"_on_{kind}")(what)
            if self._all_done():
                break
        return self._result()

    def _all_done(self) -> bool:
        return self.now > s_end(self.s) and self.unfinished == 0

    def _status(self, job: Job, status: str, retrying: bool = False) -> None:
        """Every status change goes through here (the counters a tick reads stay O(1))."""
        self.queued += (status == "queued") - (job.status == "queued")
        self.backoff += retrying - job.in_backoff
        job.in_backoff = retrying
        self.unfinished -= (status in ("succeeded", "failed")) and job.status not in ("succeeded", "failed")
        job.status = status
        if status in ("succeeded", "failed"):
            job.finished = self.now

    # --- arrivals ---------------------------------------------------------------------------

    def _new_job(self, lane: str, tier: share.Tier, tenant: str, now: float, held: bool) -> Job:
        job = Job(len(self.jobs), lane, tier, tenant, now, cycle_start=now)
        # Only large batches' items fail alone: the small batch and singles measure the scheduler.
        job.fails = lane.startswith("big-") and self.rng.random() < self.s.failing_share
        self.jobs.append(job)
        self.unfinished += 1
        self.lane_info[lane] = share.Lane(lane, tenant, tier)
        if held:
            self.lanes.setdefault(lane, deque()).append(job)
        else:
            self._status(job, "queued")
            self._task(job, now)
        return job

    def _on_small(self, _: Any) -> None:
        for _ in range(self.s.small):
            self._new_job("small", share.Tier.STANDARD, "tenant-small", self.now, held=True)

    def _on_single(self, _: Any) -> None:
        self._new_job(
            f"single-{len(self.jobs)}", share.Tier.INTERACTIVE, "tenant-singles", self.now, held=False
        )
        following = self.now + self.rng.expovariate(self.s.singles_per_s)
        if following < self.s.small_at + self.s.singles_for_s:
            self.at(following, "single")

    # --- Cloud Tasks --------------------------------------------------------------------------

    def _bucket(self) -> int:
        return self.s.bucket or max(1, math.ceil(self.s.ceiling))

    def _task(self, job: Job, when: float) -> None:
        heapq.heappush(self.pending, (when, next(self.seq), job, job.gen))
        self.at(when, "dispatch")

    def _on_dispatch(self, _: Any) -> None:
        """Run every task due, as the queue's bucket and concurrency let it."""
        limit = self.s.max_concurrent or 10**9
        while self.pending and self.pending[0][0] <= self.now + 1e-9:
            self.tokens = min(
                float(self._bucket()), self.tokens + (self.now - self.tokens_at) * self.s.ceiling
            )
            self.tokens_at = self.now
            if self.tokens < 1 or self.running_tasks >= limit:
                wait = (1 - self.tokens) / self.s.ceiling if self.tokens < 1 else 0.05
                self.at(self.now + max(wait, 1e-3), "dispatch")
                return
            _, _, job, gen = heapq.heappop(self.pending)
            if gen != job.gen or job.status in ("succeeded", "failed"):
                continue  # a stale task: the claim finds the job finished or on a newer task
            if job.status != "queued":
                continue  # held again, or running: the attempt holding the lease settles it
            self.tokens -= 1
            self._attempt(job)

    # --- the worker and the model ---------------------------------------------------------------

    def _attempt(self, job: Job) -> None:
        self._status(job, "running")
        job.attempts += 1
        job.lease_until = self.now + self.s.lease_s
        self.running_tasks += 1
        start = self.now + OVERHEAD_S
        self.quota_tokens = min(
            max(1.0, self.s.quota), self.quota_tokens + (start - self.quota_at) * self.s.quota
        )
        self.quota_at = start
        outage = any(a <= start < a + d for a, d in self.s.outages)
        if not outage and self.quota_tokens < 1:
            self.at(start + QUOTA_ANSWER_S, "end", (job, job.gen, job.attempts, "quota", 0.0, self.now))
            return
        if not outage:
            self.quota_tokens -= 1
        took = self.s.latency_s * math.exp(self.rng.gauss(0, 0.3))
        outcome = "failure" if outage or job.fails else "success"
        if outcome == "failure" and self.s.fail_after_s is not None:
            took = self.s.fail_after_s
        self.at(start + took, "end", (job, job.gen, job.attempts, outcome, took, self.now))

    def _on_end(self, what: tuple[Job, int, int, str, float, float]) -> None:
        job, gen, attempt, outcome, took, began = what
        if any(began <= crash < self.now for crash in self.s.crashes):
            return  # the attempt died with its worker: the job waits for its lease and the sweep
        if job.gen != gen or job.attempts != attempt or job.status != "running":
            return  # another attempt took over
        self.running_tasks -= 1
        retry = job.retry_count > 0 or (job.failed_before and not self.s.legacy)  # worker: ModelCall.retry
        self.calls.append((self.now, outcome, retry, job.tier, took * 1000))
        self.counts[outcome] += 1
        if outcome == "success":
            self._status(job, "succeeded")
            return
        if outcome == "quota":
            self._hold_again(job)
            return
        opened = (self.state or {}).get("opened_at")
        since = job.cycle_start if self.s.legacy else max(job.cycle_start, job.restarted)  # breaker_start
        if opened is not None and EPOCH + dt.timedelta(seconds=since) < opened:
            self._hold_again(job)  # released before the model went down for everyone
            return
        last = retries.is_last_attempt(
            self.s.max_attempts, int(self.s.max_retry_s), job.retry_count,
            EPOCH + dt.timedelta(seconds=job.cycle_start), now=EPOCH + dt.timedelta(seconds=self.now),
        )  # fmt: skip
        verdict = attempts.judge({}, "model_unavailable", "failed", True, last)
        if verdict.final:
            self._status(job, "failed")
            return
        self._status(job, "queued", retrying=True)
        job.retry_count += 1
        job.failed_before = True
        backoff = min(MAX_BACKOFF_S, MIN_BACKOFF_S * 2 ** min(job.retry_count - 1, MAX_DOUBLINGS))
        self._task(job, self.now + backoff)

    def _hold_again(self, job: Job) -> None:
        """Back to its lane, first in line, attempt uncounted (a single to its tenant's lane)."""
        self._status(job, "held")
        job.attempts -= 1
        job.gen += 1
        lane = job.lane if not job.lane.startswith("single-") else f"singles-{job.tenant}"
        self.lane_info[lane] = share.Lane(lane, job.tenant, job.tier)
        self.lanes.setdefault(lane, deque()).appendleft(job)

    # --- failures and the sweep ----------------------------------------------------------------

    def _on_crash(self, _: Any) -> None:
        """Every attempt in flight dies (their ends are dropped); the worker is back at once (Cloud
        Run starts another instance)."""
        self.running_tasks = 0

    def _on_sweep(self, _: Any) -> None:
        for job in [j for j in self.jobs if j.status == "running"] if self.s.crashes else []:
            if job.lease_until + self.s.repair_after_s < self.now:
                # A new task generation: Cloud Tasks starts it at retry count 0.
                self._status(job, "queued")
                job.gen, job.retry_count, job.restarted = job.gen + 1, 0, self.now
                self._task(job, self.now)
        if not self._all_done():
            self.at(self.now + self.s.sweep_s, "sweep")

    # --- the dispatcher ----------------------------------------------------------------------

    def _on_tick(self, _: Any) -> None:
        s, now = self.s, self.now
        since = self.last_tick
        seconds = max(s.window_s / 2, now - since) if self.state else s.window_s
        recent = self.calls[self.cursor :] if self.state else []
        self.cursor = len(self.calls)
        tally = Counter(c[1] for c in recent)
        # dispatch.in_queue: jobs waiting out a retry's backoff are not ahead (before issue 23 they were)
        waiting = self.queued if s.legacy else self.queued - self.backoff
        active = [self.lane_info[k] for k, v in self.lanes.items() if v]
        seen = control.Window(
            seconds=seconds, successes=tally["success"], quota_errors=tally["quota"], failures=tally["failure"],
            backlog=waiting + len(active), retries=sum(1 for c in recent if c[2]),
            retry_failures=sum(1 for c in recent if c[2] and c[1] == "failure"),
        )  # fmt: skip
        interactive = sum(1 for c in recent if c[3] is share.Tier.INTERACTIVE)
        answered = [round(c[4]) for c in recent if c[1] == "success"]
        stamp = EPOCH + dt.timedelta(seconds=now)
        self.state = dispatch.next_state(self.state, seen, self.bounds, stamp, waiting, interactive, answered)
        if self.state["breaker"] == "open":
            self.breaker_open_s += s.window_s
        # Before issue 23 the budget subtracted work queued ahead even at probe pace.
        judged = {**self.state, "breaker": "closed"} if s.legacy else self.state
        allowed = dispatch.budget(self.settings, judged, waiting, seconds)
        rate = max(float(self.state["rate"]), 1e-6)
        position = [0]

        def take(calls: dict[str, int]) -> dict[str, int]:
            got = {}
            for lane_id, n in sorted(calls.items()):
                lane = self.lanes.get(lane_id) or deque()
                k = 0
                while lane and k < n:
                    job = lane.popleft()
                    self._status(job, "queued")
                    job.cycle_start, job.retry_count = now, 0
                    job.gen += 1
                    self._task(job, now + (position[0] + k) / rate)
                    if lane_id.startswith("big-"):
                        self.last_big_release = now + (position[0] + k) / rate
                    k += 1
                got[lane_id] = k
                position[0] += k
            return got

        done = share.rounds(
            math.floor(allowed), active, dict(self.state.get("deficits") or {}), self.weights, take
        )
        self.state.update(dispatch.release_record(self.state, active, done, allowed, seconds))
        for lane_id in done.drained:
            if not self.lanes.get(lane_id):
                self.lanes.pop(lane_id, None)
        self.last_tick = now
        self.at(now + s.window_s, "tick")

    # --- the report ------------------------------------------------------------------------

    def _result(self) -> Result:
        small = [j for j in self.jobs if j.lane == "small"]
        big = [j for j in self.jobs if j.lane.startswith("big-")]
        singles = [j for j in self.jobs if j.tier is share.Tier.INTERACTIVE]
        done = lambda js: all(j.finished is not None for j in js)  # noqa: E731
        small_s = max(j.finished for j in small) - self.s.small_at if small and done(small) else None  # type: ignore[type-var,operator]
        big_done = max(j.finished for j in big) if big and done(big) else None  # type: ignore[type-var]
        # Busy: from the start until the last large item's task was due for the last time; the
        # calls started meanwhile that the model admitted (answered: an image, or a failure that
        # used the quota too), against what the quota allowed in that time.
        busy_end = self.last_big_release
        successes = sum(
            1 for c in self.calls if c[1] != "quota" and c[0] - c[4] / 1000 - OVERHEAD_S <= busy_end
        )
        return Result(
            scenario=self.s, small_s=small_s,
            singles_ms=[(j.finished - j.created) * 1000 for j in singles if j.finished is not None],
            big_done_s=big_done,
            last_success_s=max((j.finished or 0.0 for j in big if j.status == "succeeded"), default=0.0), busy_s=max(0.0, busy_end), busy_successes=successes,
            failed=sum(1 for j in self.jobs if j.status == "failed"),
            succeeded=sum(1 for j in self.jobs if j.status == "succeeded"),
            lost=sum(1 for j in self.jobs if j.finished is None), breaker_open_s=self.breaker_open_s,
            calls=self.counts, events=self.n,
        )  # fmt: skip


def s_end(s: Scenario) -> float:
    """Nothing arrives after this."""
    return max(
        s.small_at, s.small_at + s.singles_for_s if s.singles_per_s else 0.0, max(s.crashes, default=0.0)
    )


def run(scenario: Scenario) -> Result:
    """Play one scenario."""
    return World(scenario).run()
