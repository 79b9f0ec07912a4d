"""The dispatcher: one tick per control window sets the pace of model calls (control.py) and
releases that many held jobs into the generation queue, fairly between lanes (share.py).

The tick is a self-rescheduling task named after its pool and window, so duplicates collapse into
one; whatever starts work (a batch's chunk, a job held after a quota error, a batch retry, the
repair sweep, a single generation when the measures are stale) makes sure the next tick exists.
Released tasks get a `schedule_time` spread over the window at the pace, under the queue's own
rate, which stays queue.yaml's value: the ceiling. The queue is kept shallow
(LOTE_DISPATCH_DEPTH_S of work), so a newcomer waits seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lote import bulk, logs, tasks, timeutil
from lote.answers import Answer
from lote.dispatch import control, lanes, share, spend, state
from lote.services import Services
from lote.settings import Settings
from lote.statuses import JobStatus

log = logging.getLogger("lote.dispatch")
IN_QUEUE_CAP = 10_000
# Composite indexes of the queries below (firestore.indexes.json must hold each; a test checks).
INDEXES = [(lanes.JOBS, ("status", "hold", "error_streak")), (lanes.JOBS, ("status", "hold", "waits_on"))]
LANE_RATE_MEMORY = 0.5  # weight of the past in each lane's release rate (what ETAs divide by)
MIN_LANE_RATE = 0.01
INTERACTIVE_MEMORY = 0.5  # weight of the past in the singles' call rate


def pool(settings: Settings) -> str:
    """The pool of image model calls (one queue, one quota)."""
    return settings.generation_queue


def text_pool(settings: Settings) -> str:
    """The pool of text model calls (a pipeline's analyze and verify): its own quota, recorded apart
    so a text 429 never slows the image pool's pace."""
    return f"text:{settings.text_model}"


def limits(settings: Settings) -> control.Limits:
    """The controller's bounds: the ceiling is the generation queue's rate; the start defaults to it."""
    ceiling = settings.dispatch_ceiling_rps
    return control.Limits(
        start=min(ceiling, settings.dispatch_start_rps or ceiling),
        ceiling=ceiling,
        blocked_probe_per_s=1 / settings.dispatch_blocked_probe_s,
    )


def window_at(settings: Settings, seconds: float) -> int:
    """The number of the control window that contains this instant (seconds since the epoch)."""
    return int(seconds // settings.dispatch_window_s)


_ensured: dict[str, int] = {}  # pool → the last window this process made sure of (skip repeats)


def ensure_running(services: Services, pool_name: str) -> None:
    """Make sure a tick is coming: this window's, at once, unless one already ran (or is waiting),
    then the next window's (a running chain creates the same one). A failure is logged, not raised:
    the repair sweep restarts a chain that has work and no tick."""
    from google.api_core.exceptions import GoogleAPICallError, RetryError

    s = services.settings
    now = services.clock().timestamp()
    window = window_at(s, now)
    if _ensured.get(pool_name) == window:
        return
    try:
        if not tasks.create(services, tasks.Dispatch(pool=pool_name, window=window)):
            tasks.create(services, tasks.Dispatch(pool=pool_name, window=window + 1),
                         max(0.0, (window + 1) * s.dispatch_window_s - now))  # fmt: skip
    except (GoogleAPICallError, RetryError) as exc:
        log.warning("dispatch tick for %s not created, left to the repair sweep: %s", pool_name, exc)
        return
    _ensured[pool_name] = window


def keep_measured(services: Services, pool_name: str) -> None:
    """After a single's submission: restart the ticks if their measures have gone stale. Batches and
    holds start ticks themselves; singles alone would leave `eta` and the singles' rate unmeasured,
    and starting ticks on every single would keep a chain (a task and ~7 operations a window)
    running for as long as a trickle of singles lasts. The facts read is cached per process."""
    measured_at = state.facts(services.firestore.db, pool_name).measured_at
    if stale(measured_at, services.clock(), services.settings.dispatch_measure_every_s):
        ensure_running(services, pool_name)


def stale(measured_at: dt.datetime | None, now: dt.datetime, every_s: float) -> bool:
    """Whether measures taken at `measured_at` (None: never) are due again."""
    return measured_at is None or (now - measured_at).total_seconds() >= every_s


def in_queue(db: Any) -> int:
    """Jobs released and not started: what the queue already holds ahead of a new release. Jobs
    waiting out a retry's backoff (`error_streak` > 0: minutes, not the queue's depth) or an
    identical request's image (`waits_on`) are not ahead of anything; counted, a handful of items
    that fail alone blocked every release until their 30 minutes of retries ran out (bench/sim)."""
    from google.cloud.firestore import FieldFilter

    queued = (
        db.collection(lanes.JOBS)
        .where(filter=FieldFilter("status", "==", JobStatus.QUEUED))
        .where(filter=FieldFilter("hold", "==", None))
    )
    retrying = queued.where(filter=FieldFilter("error_streak", ">", 0))
    # Waiting for an identical request's image (reuse/): one photo in 200 listings would otherwise
    # count 199 jobs ahead of every release while the first is made.
    waiting = queued.where(filter=FieldFilter("waits_on", ">", ""))
    aside = bulk.count(retrying.limit(IN_QUEUE_CAP)) + bulk.count(waiting.limit(IN_QUEUE_CAP))
    return max(0, bulk.count(queued.limit(IN_QUEUE_CAP)) - aside)


def any_running(db: Any) -> bool:
    """Whether some job's attempt is under way (one count() read)."""
    from google.cloud.firestore import FieldFilter

    query = db.collection(lanes.JOBS).where(filter=FieldFilter("status", "==", JobStatus.RUNNING)).limit(1)
    return bulk.count(query) > 0


def pace_of(doc: dict[str, Any]) -> control.Pace:
    """The controller's state as stored."""
    return control.Pace(float(doc["rate"]), control.Breaker(doc.get("breaker", "closed")),
                        float(doc.get("resume_rate") or 0.0),
                        str(doc.get("blocked_reason") or ""), float(doc.get("starved_s") or 0.0))  # fmt: skip


def tick(services: Services, pool_name: str, window: int) -> Answer:
    """One control window: observe, set the pace (once per window), release, schedule the next tick."""
    s, db = services.settings, services.firestore.db
    now = services.clock()
    previous = state.load(db, pool_name) or {}
    if int(previous.get("window", -1)) > window:
        return Answer(200, {"result": "noop", "reason": "a later window already ran"})
    since = previous.get("run_at") or now
    calls = state.calls_between(db, pool_name, since, now) if "run_at" in previous else state.Calls(Counter())
    tally = calls.tally
    active, lanes_after = lanes.round_of_active(db, pool_name, previous.get("lanes_after"))
    waiting = in_queue(db)
    seen = control.Window(
        seconds=max(s.dispatch_window_s / 2, (now - since).total_seconds()),
        successes=tally[state.Outcome.SUCCESS], quota_errors=tally[state.Outcome.QUOTA],
        failures=tally[state.Outcome.FAILURE], backlog=waiting + len(active),
        retries=tally["retry"], retry_failures=tally[f"retry:{state.Outcome.FAILURE}"],
        blocked=tally[state.Outcome.BLOCKED], blocked_reason=_most_common_reason(tally),
    )  # fmt: skip
    bounds = limits(s)

    def compute(stored: dict[str, Any] | None) -> dict[str, Any]:
        interactive = tally[f"tier:{share.Tier.INTERACTIVE}"]
        updated = next_state(stored, seen, bounds, now, waiting, interactive, calls.answered_ms)
        if (stored or {}).get("breaker", "closed") != updated["breaker"]:
            # One line per change: Terraform's `breaker_opened` log metric counts the "open" ones,
            # `model_blocked` the "blocked" ones (an operator must act: a key, billing, the quota).
            reason = f" ({updated['blocked_reason']})" if updated.get("blocked_reason") else ""
            said, state_now = "dispatch %s: breaker %s%s (window %s)", updated["breaker"]
            logs.emit(log, logging.WARNING, "dispatch.breaker", said, pool_name, state_now, reason, seen,
                      pool=pool_name, state=state_now,
                      reason=updated.get("blocked_reason") or None)  # fmt: skip
        # Once per window (a duplicate tick does not get here): the finished jobs' tokens by day.
        spent = spend.by_day((stored or {}).get("spend"), calls.spend, now)
        tiers = spend.by_tier_day((stored or {}).get("spend_tiers"), calls.spend_tiers, now)
        return {**updated, "pool": pool_name, "spend": spent, "spend_tiers": tiers}

    current, fresh = state.advance(db, pool_name, window, compute)
    if current is None:
        return Answer(200, {"result": "noop", "reason": "a later window already ran"})
    released = 0
    if fresh or _owner_gave_up(s, current, window, now):
        released = release(services, pool_name, window, current, active, waiting, seen, lanes_after)
    if fresh:
        _gauges(pool_name, current, seen, active, waiting, released)
    # Jobs running now make calls in a later window: a chain that stopped before them would leave
    # those calls unmeasured (a single's first tick always sees none). The count runs only here.
    idle = not active and waiting == 0 and seen.calls == 0 and not any_running(db)
    if not idle:
        # A late tick (its queue was paused or slow) hands over to the window after now, so ticks
        # never run back to back to catch up.
        clock = services.clock().timestamp()
        following = max(window, window_at(s, clock)) + 1
        tasks.create(services, tasks.Dispatch(pool=pool_name, window=following),
                     max(0.0, following * s.dispatch_window_s - clock))  # fmt: skip
    return Answer(200, {"result": "ticked" if fresh else "repeated", "rate": current["rate"],
                        "breaker": current["breaker"], "released": released, "idle": idle})  # fmt: skip


# The breaker as a number a chart can draw (a log-based metric extracts numbers only).
BREAKER_LEVEL = {
    str(control.Breaker.CLOSED): 0,
    str(control.Breaker.OPEN): 1,
    str(control.Breaker.BLOCKED): 2,
}


def _gauges(
    pool_name: str,
    current: dict[str, Any],
    seen: control.Window,
    active: list[share.Lane],
    waiting: int,
    released: int,
) -> None:
    """One `dispatch.tick` line per window with what the tick already holds (no read): the pace and
    its share of the queue's ceiling (what the model's quota lets through), the window's calls and
    quota errors, the breaker (as a level a chart can draw), the backlog (released jobs not started
    and active lanes, by tier: a lane is one batch's, or one tenant's singles, held work) and what
    was released. Terraform's log-based metrics chart them (terraform/monitoring.tf)."""
    rate, ceiling = float(current["rate"]), float(current.get("ceiling") or 0.0)
    breaker = str(current.get("breaker", control.Breaker.CLOSED))
    tiers = Counter(lane.tier for lane in active)
    now, oldest = timeutil.now(), dict.fromkeys(share.Tier, 0)
    for lane in active:  # the oldest held work per tier: how long its lane has been active (whole s)
        if lane.active_since is not None:
            oldest[lane.tier] = max(oldest[lane.tier], int((now - lane.active_since).total_seconds()))
    logs.emit(log, logging.INFO, "dispatch.tick", "dispatch %s: %.2f/s, breaker %s, %d in queue, %d lanes",
              pool_name, rate, breaker, waiting, len(active), pool=pool_name, rate_per_s=rate,
              pace_share=rate / ceiling if ceiling > 0 else None, calls=seen.calls,
              quota_errors=seen.quota_errors,
              quota_error_share=seen.quota_errors / seen.calls if seen.calls else 0.0,
              breaker=breaker, breaker_level=BREAKER_LEVEL.get(breaker, 0), in_queue=waiting,
              backlog=seen.backlog, lanes=len(active), lanes_interactive=tiers[share.Tier.INTERACTIVE],
              lanes_express=tiers[share.Tier.EXPRESS], lanes_standard=tiers[share.Tier.STANDARD],
              lanes_economy=tiers[share.Tier.ECONOMY], released=released,
              oldest_held_s_interactive=oldest[share.Tier.INTERACTIVE],
              oldest_held_s_express=oldest[share.Tier.EXPRESS],
              oldest_held_s_standard=oldest[share.Tier.STANDARD],
              oldest_held_s_economy=oldest[share.Tier.ECONOMY])  # fmt: skip


def next_state(
    stored: dict[str, Any] | None,
    seen: control.Window,
    bounds: control.Limits,
    now: dt.datetime,
    waiting: int,
    interactive_calls: int,
    answered_ms: Sequence[int] = (),
) -> dict[str, Any]:
    """The pool's state after a window (pure): the controller's new pace, when the breaker opened,
    and what the window saw (for the release and the admin view)."""
    known = stored is not None and "rate" in stored
    pace = (
        control.next_pace(pace_of(stored), seen, bounds)
        if stored is not None and known
        else control.first(bounds)
    )
    opened_at = (stored or {}).get("opened_at")
    if pace.breaker != (stored or {}).get("breaker", control.Breaker.CLOSED):
        # Open then blocked (or back) keeps the first time: work released before it is held alike.
        was_closed = (stored or {}).get("breaker", control.Breaker.CLOSED) == control.Breaker.CLOSED
        opened_at = None if pace.breaker is control.Breaker.CLOSED else now if was_closed else opened_at
    last = {"seconds": seen.seconds, "successes": seen.successes, "quota_errors": seen.quota_errors,
            "failures": seen.failures, "blocked": seen.blocked, "interactive": interactive_calls}  # fmt: skip
    # Singles' calls per second, smoothed: what the release holds back for them. A flat share held
    # back whenever one had come cost a 1,500-item batch 9% of its time for one single every 5 s.
    observed = interactive_calls / seen.seconds
    previous = (stored or {}).get("interactive_rate")
    interactive_rate = observed if previous is None else (
        INTERACTIVE_MEMORY * float(previous) + (1 - INTERACTIVE_MEMORY) * observed
    )  # fmt: skip
    # An attempt's typical duration, for the ETA of a single: the window's median, smoothed like
    # the rate; a window without answers keeps the last figure (the model has not got faster).
    attempt_ms = (stored or {}).get("attempt_ms")
    if answered_ms:
        median = statistics.median(answered_ms)
        past = median if attempt_ms is None else float(attempt_ms)
        attempt_ms = round(INTERACTIVE_MEMORY * past + (1 - INTERACTIVE_MEMORY) * median)
    return {
        **(stored or {}), "run_at": now, "rate": min(pace.rate, bounds.ceiling), "breaker": str(pace.breaker),
        "attempt_ms": attempt_ms, "opened_at": opened_at, "resume_rate": pace.resume_rate,
        "blocked_reason": pace.reason or None, "starved_s": pace.starved_s,
        "start": bounds.start, "ceiling": bounds.ceiling, "in_queue": waiting, "last": last,
        "interactive_rate": interactive_rate,
    }  # fmt: skip


def _most_common_reason(tally: Counter[str]) -> str:
    reasons = {k.removeprefix("reason:"): n for k, n in tally.items() if k.startswith("reason:")}
    return max(sorted(reasons), key=lambda r: reasons[r]) if reasons else ""


def _owner_gave_up(settings: Settings, current: dict[str, Any], window: int, now: Any) -> bool:
    """Whether a repeated tick must do the release: the tick that set this window's pace did not
    record one within a window (it crashed; this is its retry). A duplicate running alongside it
    releases nothing, so a window is released once."""
    late = (now - current["run_at"]).total_seconds() > settings.dispatch_window_s
    return current.get("released_window") != window and late


def budget(settings: Settings, current: dict[str, Any], waiting: int, elapsed_s: float) -> float:
    """Calls to release now: the pace's worth of the time since the last tick (at most two windows,
    so a late tick does not burst) and the fraction carried over, less what single generations are
    expected to use (their measured rate, at most twice LOTE_DISPATCH_INTERACTIVE_SHARE of it, so
    batches borrow back whatever singles leave), less what the queue holds beyond its depth (not
    while the breaker is open)."""
    rate, window_s = float(current["rate"]), settings.dispatch_window_s
    span = min(elapsed_s, 2 * window_s)
    allowance = rate * span + float(current.get("carry") or 0.0)
    expected = float(current.get("interactive_rate") or 0.0) * span
    reserve = min(expected, allowance * settings.dispatch_interactive_share * 2)
    # While the breaker is open the pace is a probe every few seconds: a job or two waiting out a
    # retry backoff (queued, not due for minutes) would be "ahead" of it and stop every probe.
    probing = current.get("breaker") in (control.Breaker.OPEN, control.Breaker.BLOCKED)
    ahead = 0.0 if probing else max(0.0, waiting - rate * settings.dispatch_depth_s)
    return max(0.0, allowance - reserve - ahead)


def release(
    services: Services,
    pool_name: str,
    window: int,
    current: dict[str, Any],
    active: list[share.Lane],
    waiting: int,
    seen: control.Window,
    lanes_after: str | None = None,
) -> int:
    """Release this window's budget of held jobs, lane by lane as share.split() grants, and record
    what was released (deficits, per-lane rates, the fraction carried, where the next window's
    round over the active lanes goes on)."""
    s, db = services.settings, services.firestore.db
    allowed = budget(s, current, waiting, seen.seconds)
    weights = {share.Tier(k): v for k, v in s.tier_weights.items()}
    rate = max(float(current["rate"]), 1e-6)
    position = [0]

    def take(calls: dict[str, int]) -> dict[str, int]:
        got = _release_round(services, calls, position[0], rate)
        position[0] += sum(got.values())
        return got

    done = share.rounds(math.floor(allowed), active, dict(current.get("deficits") or {}), weights, take)
    for lane_id in done.drained:
        lanes.retire(db, lane_id)
    record = release_record(current, active, done, allowed, seen.seconds)
    state.record_release(db, pool_name, window, {**record, "lanes_after": lanes_after})
    return sum(done.calls.values())


def release_record(
    current: dict[str, Any], active: list[share.Lane], done: share.Released, allowed: float, seconds: float
) -> dict[str, Any]:
    """What a window's release leaves in the pool's state (pure): jobs released, the fraction of a
    call carried to the next window, each live lane's smoothed release rate (what ETAs divide by)
    and deficits."""
    live = {lane.id for lane in active} - done.drained
    previous_rates: dict[str, float] = dict(current.get("lane_rates") or {})
    got = {lane_id: done.calls.get(lane_id, 0) / seconds for lane_id in live}
    lane_rates = {
        lane_id: LANE_RATE_MEMORY * previous_rates.get(lane_id, got[lane_id])
        + (1 - LANE_RATE_MEMORY) * got[lane_id]
        for lane_id in live
    }
    # A lane that gets (almost) nothing has no rate: its ETA is unknown, not centuries away.
    lane_rates = {lane_id: rate for lane_id, rate in lane_rates.items() if rate >= MIN_LANE_RATE}
    carry = min(1.0, allowed - math.floor(allowed)) if done.left <= 0 else 0.0
    return {"released": sum(done.calls.values()), "carry": carry, "lane_rates": lane_rates,
            "deficits": {k: v for k, v in done.deficits.items() if k in live}}  # fmt: skip


def _release_round(services: Services, calls: dict[str, int], first: int, rate: float) -> dict[str, int]:
    """Release each lane's grant in parallel, the lanes' tasks one after the other in time."""
    starts, position = {}, first
    for lane_id, n in sorted(calls.items()):
        starts[lane_id], position = position, position + n

    def one(lane_id: str) -> int:
        return _release_lane(services, lane_id, calls[lane_id], starts[lane_id], rate)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(calls, pool.map(one, calls), strict=True))


def _release_lane(services: Services, lane_id: str, n: int, first: int, rate: float) -> int:
    """Create the tasks of the lane's next `n` held jobs, spaced at the pace from position `first`,
    then mark them released (a precondition skips any job a worker or a cancel changed meanwhile:
    its task, if any, finds it claimed or finished). Tasks first: a crash in between leaves held
    jobs with a task, which the next release names again (ALREADY_EXISTS) and a claim un-holds."""
    from google.cloud.firestore import Client

    db = services.firestore.db
    found = lanes.held(db, lane_id, n)
    generations = [tasks.Generate(job_id=job.id, gen=int(job.get("task_gen") or 0)) for job in found]
    # Each task carries its job's trace: the tick that releases it belongs to no image.
    traces = [job.get("trace") for job in found]
    tasks.create_many(services, generations, [(first + i) / rate for i in range(len(generations))], traces)
    now, check_at = services.clock(), tasks.check_at(services, tasks.Generate)
    fields = {"hold": None, "released_at": now, "enqueued": True, "task_check_at": check_at}
    guarded = [
        (job.reference, fields, Client.write_option(last_update_time=job.update_time)) for job in found
    ]
    bulk.write(db, updates=guarded)
    return len(found)
