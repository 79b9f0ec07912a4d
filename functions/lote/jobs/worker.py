"""One attempt at one image: claim the job → run the attempt into one outcome → settle it → do what
the commit made due. The rules of how an attempt ends are jobs/outcome.py's; this module only reads
what they need and carries out what they decide."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import cast

from lote import ids, logs, tasks, timeutil, tracing, transactions
from lote.answers import Answer
from lote.billing import pricing
from lote.clients.model import ModelFailure
from lote.dispatch import service as dispatch
from lote.dispatch import share, spend, state
from lote.jobs import attempts, inputs, memory, outcome, outputs, pipeline, store
from lote.jobs import service as jobs
from lote.jobs.documents import JobDoc, JobOutput, job_of
from lote.jobs.outcome import End, Outcome
from lote.leases import ClaimKind
from lote.quality import plan as quality_plan
from lote.reuse import rules as reuse
from lote.reuse import store as reuse_store
from lote.services import Services
from lote.statuses import JobStatus
from lote.webhooks import service as webhooks

log = logging.getLogger("lote.worker")
Loaded = inputs.Loaded
# What each tier's image promises from its acceptance to its end, in seconds: a single's, and a batch
# item's by its tier (billing/pricing.json's `latency_target` says it in words). An end line says
# whether the image kept it (`within_target`), which terraform/slos.tf's SLOs count. Our guesses:
# decision note 2026-12-05-dashboard-slos-budget.
TARGET_S = {share.Tier.INTERACTIVE: 120, share.Tier.EXPRESS: 3600, share.Tier.STANDARD: 6 * 3600,
            share.Tier.ECONOMY: 24 * 3600}  # fmt: skip


def run(services: Services, job_id: str, retry_count: int) -> Answer:
    """Handle one delivery of a generation task; the Answer tells Cloud Tasks what to do next."""
    s = services.settings
    lease = dt.timedelta(seconds=s.task_dispatch_deadline_s)
    claim = store.claim(services.firestore.db, job_id, lease, tasks.check_at(services, tasks.Generate))
    if claim.kind is ClaimKind.NOOP:
        return Answer(200, {"result": "noop", "reason": claim.reason})
    if claim.kind is ClaimKind.BUSY:
        return Answer(
            429, {"result": "busy", "reason": claim.reason}, {"Retry-After": str(claim.retry_after)}
        )
    job, began = job_of(claim.doc), time.monotonic()
    with logs.bound(tenant_id=job.get("tenant_id"), job_id=job_id, batch_id=job.get("batch_id"),
                    attempt=job.get("attempts")):  # fmt: skip
        return _run(services, job_id, job, retry_count, began)


def _run(services: Services, job_id: str, job: JobDoc, retry_count: int, began: float) -> Answer:
    """The claimed attempt, from its memory reservation to its settle (every line labelled)."""
    s = services.settings
    # Waiting must leave the lease room for a model call (the attempt's first step always runs).
    wait_s = max(0.0, min(s.worker_memory_wait_s, s.task_dispatch_deadline_s - s.model_timeout_s - 5))
    try:
        limit, count = s.worker_memory_budget_mb * 1024 * 1024, len(job.get("inputs") or [])
        with memory.hold(limit, count, wait_s) as held:
            ended = _attempt(services, job_id, job, retry_count, began, held)
    except memory.MemoryBusy as exc:
        ended = outcome.of_error(_facts(services, job, retry_count, began), exc)
    return settle(services, job_id, job, ended, began)


def _attempt(
    services: Services, job_id: str, job: JobDoc, retry_count: int, began: float, held: memory.Hold
) -> Outcome:
    """The claimed attempt's outcome: an identical request's image (reuse/), or its inputs read and
    its image made through the job's plan."""
    from google.api_core.exceptions import GoogleAPICallError
    from requests import RequestException

    s = services.settings
    looks = reuse.wanted(job) and s.reuse_ttl_s > 0
    fingerprint = job.get("fingerprint") if looks else None

    def look(fingerprint: str) -> Outcome | None:
        facts = lambda: _facts(services, job, retry_count, began)  # noqa: E731
        return look_up(
            services, job_id, job, fingerprint, facts, dt.timedelta(seconds=s.task_dispatch_deadline_s)
        )

    try:
        if fingerprint is not None and (found := look(fingerprint)):  # a waiting job: before any input
            return found
        loaded = inputs.load(services, job, held.input)
        if looks and fingerprint is None:
            fingerprint = reuse.fingerprint(job, [ids.sha256_hex(data) for data, _ in loaded])
            if found := look(fingerprint):
                return found
    except inputs.InputError as exc:
        return outcome.of_error(_facts(services, job, retry_count, began), exc)
    except (GoogleAPICallError, RequestException) as exc:
        return outcome.storage_failed(_facts(services, job, retry_count, began), _describe(exc), False)
    # This job makes the image (it holds the fingerprint's claim): its end records or releases it.
    ended = _make(services, job_id, job, retry_count, began, loaded)
    return replace(ended, fingerprint=fingerprint) if fingerprint is not None else ended


def look_up(
    services: Services,
    job_id: str,
    job: JobDoc,
    fingerprint: str,
    facts: Callable[[], outcome.Attempt],
    lease: dt.timedelta,
) -> Outcome | None:
    """An identical request's image delivered (succeeded), or a wait for the job making it
    (deferred); None when this job is to make it (it now holds the fingerprint's claim for `lease`).
    Batch mode's submission looks up its requests the same way."""
    db, tenant = services.firestore.db, job["tenant_id"]
    for _ in range(2):  # a record whose image is gone is forgotten, and the fingerprint looked at again
        try:
            found = reuse_store.claim(db, tenant, fingerprint, job_id, timeutil.now(), lease)
        except transactions.Contention:  # identical jobs all looking at once: look again shortly
            return outcome.waiting(facts(), fingerprint, None, services.settings.reuse_wait_s)
        if found.kind is reuse.Kind.GO:
            return None
        if found.kind is reuse.Kind.WAIT:
            return outcome.waiting(facts(), fingerprint, str(found.owner), services.settings.reuse_wait_s)
        assert found.output is not None  # a hit has its output and source
        assert found.source is not None
        copied = outputs.copy(services, job_id, job, cast(JobOutput, found.output))
        if copied is not None:
            discount = reuse.discount(int(job.get("price") or 0), pricing.reuse_percent())
            return outcome.reused(facts(), found.source, copied[0], found.quality, discount, copied[1])
        reuse_store.forget(db, tenant, fingerprint, found.source)
    return None


def _make(
    services: Services, job_id: str, job: JobDoc, retry_count: int, began: float, loaded: list[Loaded]
) -> Outcome:
    """The attempt's outcome from the model: the job's plan run with its inputs."""
    from google.api_core.exceptions import GoogleAPICallError
    from requests import RequestException

    s = services.settings
    last = attempts.is_last_attempt(services, retry_count, job)
    steps = pipeline.Attempt(int(job["attempts"]), began, s.task_dispatch_deadline_s, s.model_timeout_s, last)
    try:
        done = pipeline.run(services, job_id, job, quality_plan.plan_of(job), steps, loaded)
    except (GoogleAPICallError, RequestException) as exc:
        return outcome.storage_failed(_facts(services, job, retry_count, began), _describe(exc), True)
    except (pipeline.Stopped, pipeline.OutOfTime, ModelFailure) as exc:
        return outcome.of_error(_facts(services, job, retry_count, began, exc), exc)
    return outcome.succeeded(_facts(services, job, retry_count, began), done)


def _facts(
    services: Services, job: JobDoc, retry_count: int, began: float, exc: Exception | None = None
) -> outcome.Attempt:
    """What the outcome's rules read besides what happened, taken now: the retry rule's inputs,
    the pools, and the image pool's breaker when the failure asks for it."""
    s = services.settings
    image_pool = dispatch.pool(s)
    opened = state.breaker_opened_at(services.firestore.db, image_pool) if outcome.asks_breaker(exc) else None
    return outcome.Attempt(
        job=job,
        number=int(job["attempts"]),
        last=attempts.is_last_attempt(services, retry_count, job),
        # A retry for the breaker: the queue retrying the task, or a job whose earlier attempt
        # failed (a sweep's restart or a batch retry starts a new task at retry count 0; counted as
        # first calls, a handful of jobs that fail alone once opened the breaker for every tenant).
        retried=retry_count > 0 or job.get("last_error") is not None,
        now=timeutil.now(),
        took_ms=round((time.monotonic() - began) * 1000),
        image_pool=image_pool,
        text_pool=dispatch.text_pool(s),
        breaker_opened_at=opened,
        jitter=random.uniform(1.0, 1.5),  # noqa: S311 (spreading load, not a secret)
    )


def settle(
    services: Services, job_id: str, job: JobDoc, ended: Outcome, began: float | None = None
) -> Answer:
    """Commit the outcome, then do what the commit made due: the task of deferred work, the
    dispatcher for held work, the output of an attempt whose job a cancel ended meanwhile, the reuse
    record of the image this job made."""
    if ended.end is End.NOOP:
        return ended.answer("stale")
    attempt = int(job["attempts"])
    with tracing.span("job.settle", end=str(ended.end), code=ended.code), webhooks.events(services) as outbox:
        # Its events are enqueued once the block ends (their tasks carry this trace on).
        started = None if began is None else timeutil.now() - dt.timedelta(seconds=time.monotonic() - began)
        written = store.settle(services.firestore.db, job_id, attempt, ended, outbox, started)
    if ended.fingerprint is not None:
        _remember(services, job_id, job["tenant_id"], written, ended)
    if written == JobStatus.QUEUED and ended.task is not None:
        jobs.enqueue(services, job_id, *ended.task)
    if written == JobStatus.QUEUED and ended.wake is not None:
        dispatch.ensure_running(services, ended.wake)
    if written == JobStatus.CANCELED and ended.created is not None:
        services.storage.delete(ended.created["bucket"], ended.created["object"])
    # One line per attempt's end; log-based metrics count `job.succeeded` and `job.failed` by their
    # event and fields (terraform/monitoring.tf), whatever the wording.
    fields = {"status": written, "end": str(ended.end), "code": ended.code, "attempt": attempt,
              "tier": str(share.tier_of(job)), "model_ms": int(ended.update.get("model_ms") or 0),
              "reused": bool(ended.update.get("reused_from")),
              "path": job.get("path") or "online", **_timing(job, ended, written)}  # fmt: skip
    if ended.end is End.SUCCEEDED:
        event = "job.succeeded" if written == JobStatus.SUCCEEDED else "job.settled"
        logs.emit(log, logging.INFO, event, "job %s attempt %d: %s (%d ms model)", job_id, attempt, written,
                  fields["model_ms"], **fields)  # fmt: skip
    elif ended.end is End.FAILED:
        event = "job.failed" if written == JobStatus.FAILED else "job.settled"
        logs.emit(log, logging.WARNING, event, "job %s attempt %d failed for good: %s (%s)", job_id, attempt,
                  ended.code, written, **fields)  # fmt: skip
    else:
        said = "job %s attempt %d %s (%s): %s"
        logs.emit(
            log, logging.INFO, "job.settled", said, job_id, attempt, ended.end, ended.code, written, **fields
        )
    return ended.answer(written)


def _timing(job: JobDoc, ended: Outcome, written: str) -> dict[str, object]:
    """The end line's figures for the dashboard and the SLOs, from what the attempt holds (no read):
    a single or a batch item (`kind`); how long it waited from acceptance to its first attempt
    (`waited_ms`); once it ended for good, acceptance to the end (`accept_to_done_ms`) and whether
    that kept its tier's target (`within_target`: a success in time; a failure the retries could not
    mend misses it; a failure that is the request's own, not retryable, is not judged); and what the
    model calls of a success cost lote (`model_cost_usd_micros`, dispatch/spend.py's prices)."""
    now, created, started = timeutil.now(), job.get("created_at"), job.get("started_at")
    found: dict[str, object] = {"kind": "item" if job.get("batch_id") else "single"}
    if created is not None and started is not None:
        found["waited_ms"] = max(0, round((started - created).total_seconds() * 1000))
    if created is not None and written in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        took_ms = max(0, round((now - created).total_seconds() * 1000))
        found["accept_to_done_ms"] = took_ms
        error = ended.update.get("error")
        if written == JobStatus.SUCCEEDED or (error is not None and error.get("retryable")):
            target_s = TARGET_S[share.tier_of(job)]
            found["within_target"] = written == JobStatus.SUCCEEDED and took_ms <= target_s * 1000
    tokens = (ended.update.get("call") or {}).get("spend") if written == JobStatus.SUCCEEDED else None
    if tokens:
        found["model_cost_usd_micros"] = spend.usd_micros(tokens, job.get("path") == "batch_mode")
    return found


def _remember(services: Services, job_id: str, tenant_id: str, written: str, ended: Outcome) -> None:
    """After the commit: the image this job made is its fingerprint's; a job that will not make it
    (failed, canceled) lets the next identical one make it instead of waiting out its claim. A crash
    before this costs identical requests a model call, not an image."""
    s, db, fingerprint = services.settings, services.firestore.db, str(ended.fingerprint)
    if written == JobStatus.SUCCEEDED and ended.update.get("output"):
        now = timeutil.now()
        until = reuse.usable_until(now, s.reuse_ttl_s, s.output_retention_days)
        output, quality = dict(ended.update["output"] or {}), ended.update.get("quality")
        reuse_store.record(db, tenant_id, fingerprint, job_id, output, quality, now, until)
    elif written in (JobStatus.FAILED, JobStatus.CANCELED):
        reuse_store.release(db, tenant_id, fingerprint, job_id)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"
