"""Rendering a job document as the API's Generation resource, with polling hints."""

from __future__ import annotations

import datetime as dt
from typing import Any

from lote import ids, timeutil
from lote.billing import pricing
from lote.dispatch import lanes, share
from lote.dispatch import views as dispatch_views
from lote.jobs.documents import JobDoc
from lote.jobs.schemas import (
    Generation,
    JobError,
    Links,
    ModelBatchStatus,
    Output,
    Preset,
    PresetList,
    PresetParam,
    Rubric,
    TimelineEvent,
)
from lote.quality import plan as quality_plan
from lote.quality import presets
from lote.quality.schemas import Quality
from lote.services import Services
from lote.statuses import TERMINAL, JobStatus
from lote.webhooks.store import DELIVERIES


def links(services: Services, job_id: str, succeeded: bool = False) -> Links:
    """self (and output) URLs of a job."""
    return links_at(services.settings.api_url, job_id, succeeded)


def links_at(api_url: str, job_id: str, succeeded: bool = False) -> Links:
    """self (and output) URLs of a job under an API base URL."""
    base = f"{api_url}/v1/generations/{job_id}"
    return Links(self=base, output=f"{base}/output" if succeeded else None)


def generation(services: Services, job_id: str, job: JobDoc) -> Generation:
    """The resource GET /v1/generations/{id} answers (the output as a fresh signed URL)."""
    url = None
    stored = job.get("output")
    if job["status"] == JobStatus.SUCCEEDED and stored:
        ttl = dt.timedelta(seconds=services.settings.signed_url_ttl_s)
        url = services.storage.cached_signed_url(stored["bucket"], stored["object"], ttl)
    view = render(services.settings.api_url, job_id, job, url)
    ref = job.get("model_batch")
    if ref and job["status"] == JobStatus.RUNNING:
        found = services.firestore.db.collection(lanes.MODEL_BATCHES).document(ref["id"]).get()
        doc = found.to_dict() or {}
        state = doc.get("model_state") or doc.get("state") or "gathered"
        view = view.model_copy(update={"model_batch": ModelBatchStatus(id=ref["id"], state=str(state))})
        return view  # its ETA is batch mode's, not the online pace's
    if job["status"] not in TERMINAL:
        pool = dispatch_views.pool_facts(services)
        if pool.opened_at is not None:
            reason = pool.blocked_reason or "model_unavailable"
            view = view.model_copy(update={"waiting_on_model": True, "waiting_reason": reason})
        else:
            lease_s = services.settings.task_dispatch_deadline_s
            view = view.model_copy(update={"eta": eta(job, pool.attempt_ms, lease_s, services.clock())})
    return view


def eta(job: JobDoc, attempt_ms: int | None, lease_s: int, now: dt.datetime) -> str | None:
    """When a job in the generation queue should be done: its attempt's start (or now, while it
    waits for one) plus the pool's typical attempt. None while held (its batch has the ETA), before
    anything was measured, or once the estimate has passed (the page says "almost done", not a
    time in the past)."""
    if attempt_ms is None or job.get("hold") or job["status"] not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return None
    begun = now
    lease_until = job.get("lease_until")
    if job["status"] == JobStatus.RUNNING and lease_until is not None:
        begun = lease_until - dt.timedelta(seconds=lease_s)  # the claim set lease_until so
    finish = begun + dt.timedelta(milliseconds=attempt_ms)
    return timeutil.iso(finish) if finish > now else None


def render(api_url: str, job_id: str, job: JobDoc, output_url: str | None = None) -> Generation:
    """The Generation resource of a job document; without `output_url` the output is the API's
    redirect link (stable, for webhook payloads that may be delivered hours later)."""
    job_links = links_at(api_url, job_id, job["status"] == JobStatus.SUCCEEDED)
    output = None
    stored = job.get("output")
    if job["status"] == JobStatus.SUCCEEDED and stored:
        output = Output(
            url=output_url or job_links.output or "",
            **{k: stored[k] for k in ("mime_type", "width", "height", "bytes", "sha256")},
        )
    failed = job.get("error") if job["status"] == JobStatus.FAILED else None
    error = JobError(**failed) if failed else None
    return Generation(
        id=job_id,
        status=job["status"],
        attempts=int(job.get("attempts", 0)),
        created_at=timeutil.iso(job["created_at"]) or "",
        started_at=timeutil.iso(job.get("started_at")),
        finished_at=timeutil.iso(job.get("finished_at")),
        model=job["model"],
        model_ms=job.get("model_ms"),
        cancel_requested=bool(job.get("cancel_requested")) and job["status"] not in TERMINAL,
        output=output,
        error=error,
        prompt=presets.fill(job.get("prompt") or "", job.get("preset"), _analysis(job)),
        preset=job.get("preset"),
        params=presets.filled(job.get("preset"), job.get("params") or {}, _analysis(job)),
        images=list(job.get("inputs") or []),
        aspect_ratio=job.get("aspect_ratio"),
        output_format=job.get("output_format") or "png",
        metadata=job.get("metadata") or {},
        webhook_url=job.get("webhook_url") if not job.get("batch_id") else None,
        priority=share.tier_of(job),
        quality=Quality(**job["quality"]) if job.get("quality") else None,
        reused_from=job.get("reused_from"),
        links=job_links,
    )


def _analysis(job: JobDoc) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (job.get("pipeline") or {}).get("analysis")
    return found


def etag(job_id: str, update_time: dt.datetime | None, waiting_reason: str | None = None) -> str:
    """The validator (unquoted; served weak) that changes with every write to the job, and when the model
    starts or stops failing for everyone (waiting_on_model is not on the job)."""
    stamp = update_time.isoformat() if update_time else ""
    return ids.sha256_hex(f"{job_id}@{stamp}{'!' + waiting_reason if waiting_reason else ''}")[:24]


def poll_after(job: JobDoc) -> int | None:
    """Seconds a client should wait before polling again: ~2 s at first, ~15 s for long waits."""
    if job["status"] in TERMINAL:
        return None
    age = (timeutil.now() - job["created_at"]).total_seconds()
    for limit, seconds in ((10, 2), (60, 5), (300, 10)):
        if age < limit:
            return seconds
    return 15


def preset_list(default_model: str) -> PresetList:
    """Every preset with its parameters, steps, rubric and price (by step), from presets.json."""
    found = []
    for name, spec in sorted(presets.catalogue().items()):
        plan = quality_plan.plan_for(name, None, None, False)
        auto = presets.auto_params(name)
        params = [
            PresetParam(name=param, required=rule.get("default") is None, default=rule.get("default"),
                        choices=[presets.AUTO, *rule["choices"]] if param in auto else rule.get("choices"),
                        auto_from=f"analysis.{auto[param][0]}" if param in auto else None)
            for param, rule in spec["params"].items()
        ]  # fmt: skip
        rubric = None
        if plan.rubric is not None:
            rubric = Rubric(checks=list(plan.rubric.checks), threshold=plan.rubric.threshold,
                            max_regenerations=plan.max_regenerations)  # fmt: skip
        prices = pricing.step_prices(default_model, name, plan.steps)
        found.append(
            Preset(
                name=name,
                description=spec.get("description", ""),
                min_images=int(spec.get("min_images", 0)),
                price=pricing.price(default_model, name, plan.steps),
                params=params,
                steps=list(plan.steps),
                step_prices=prices,
                rubric=rubric,
            )
        )
    return PresetList(presets=found)


def timeline(services: Services, job_id: str, job: JobDoc) -> list[TimelineEvent]:
    """The image's life from what lote records: the job's times and `history`, and its webhook
    deliveries' attempts (one query, on `subject`)."""
    from google.cloud.firestore import FieldFilter

    found: list[tuple[dt.datetime, TimelineEvent]] = []

    def add(at: dt.datetime | None, event: Any, attempt: int | None = None, **detail: object) -> None:
        if at is not None:
            kept = {k: v for k, v in detail.items() if v is not None}
            found.append(
                (at, TimelineEvent(at=timeutil.iso(at) or "", event=event, attempt=attempt, detail=kept))
            )

    add(job.get("created_at"), "accepted")
    add(job.get("released_at"), "released")
    for entry in job.get("history") or []:
        number = entry.get("attempt")
        add(entry.get("started_at"), "attempt_started", number)
        add(entry.get("ended_at"), "attempt_ended", number, end=entry.get("end"), code=entry.get("code"),
            model_ms=entry.get("model_ms"))  # fmt: skip
    if job["status"] in TERMINAL:
        add(job.get("finished_at"), "finished", status=job["status"])
    query = services.firestore.db.collection(DELIVERIES).where(filter=FieldFilter("subject", "==", job_id))
    for snapshot in query.limit(20).stream():
        delivery = snapshot.to_dict() or {}
        for sent in delivery.get("attempts") or []:
            add(sent.get("at"), "webhook", type=delivery.get("type"), status_code=sent.get("status_code"),
                latency_ms=sent.get("latency_ms"), error=sent.get("error"))  # fmt: skip
    return [event for _, event in sorted(found, key=lambda pair: pair[0])]
