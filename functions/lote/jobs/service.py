"""Generations as the API sees them: submit, read, cancel, and the repair sweep."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from lote import ids, images, tasks, timeutil, tracing
from lote.answers import Answer
from lote.billing import alerts as account_events
from lote.billing import credits, pricing
from lote.clients import firestore
from lote.dispatch import service as dispatch
from lote.errors import Conflict, InvalidRequest, NotFound
from lote.idempotency import Key
from lote.jobs import store, views
from lote.jobs.documents import JobDoc, job_of
from lote.jobs.schemas import Accepted, Generation, GenerationRequest
from lote.quality import plan as quality_plan
from lote.quality import presets
from lote.services import Services
from lote.statuses import TERMINAL, JobStatus
from lote.tenants.service import Caller
from lote.webhooks import service as webhooks
from lote.webhooks import urls

log = logging.getLogger("lote.jobs")
UPLOADS_PREFIX = "uploads"


def tenant_upload_prefix(tenant_id: str) -> str:
    """Where a tenant's inputs live in the input bucket; other tenants' objects are refused."""
    return f"{UPLOADS_PREFIX}/{tenant_id}/"


def check_inputs(
    services: Services | None, tenant_id: str, bucket: str, uris: list[str], field_prefix: str = ""
) -> list[tuple[int, bytes, images.ImageInfo]]:
    """Validate inputs without writing: data: URIs decoded and proven images, gs:// under the
    tenant's prefix (and existing, when `services` is given). Returns the decoded data URIs."""
    decoded: list[tuple[int, bytes, images.ImageInfo]] = []
    for index, uri in enumerate(uris):
        where = f"{field_prefix}images.{index}"
        if uri.startswith("data:"):
            try:
                data = images.decode_data_uri(uri)
                decoded.append((index, data, images.inspect(data)))
            except images.InvalidImage as exc:
                raise InvalidRequest(str(exc), {"field": where, "reason": exc.code}) from None
        elif uri.startswith("gs://"):
            target, _, name = uri.removeprefix("gs://").partition("/")
            if target != bucket or not name.startswith(tenant_upload_prefix(tenant_id)):
                raise InvalidRequest(
                    f"gs:// inputs must be in gs://{bucket}/{tenant_upload_prefix(tenant_id)}",
                    {"field": where},
                )
            if services is not None and not services.storage.exists(bucket, name):
                raise InvalidRequest(f"{uri} does not exist", {"field": where})
    return decoded


def stage_inputs(
    services: Services,
    tenant_id: str,
    job_id: str,
    uris: list[str],
    decoded: list[tuple[int, bytes, images.ImageInfo]],
) -> list[str]:
    """Inputs as the worker reads them: data: URIs written to the input bucket as gs:// objects."""
    bucket = services.settings.input_bucket
    staged = list(uris)
    for index, data, info in decoded:
        name = f"{tenant_upload_prefix(tenant_id)}{job_id}/{index}.{info.mime_type.split('/')[1]}"
        services.storage.put_once(bucket, name, data, info.mime_type)
        staged[index] = f"gs://{bucket}/{name}"
    return staged


def job_document(
    tenant_id: str, spec: dict[str, Any], inputs: list[str], default_model: str
) -> dict[str, Any]:
    """The document of a new queued job from a normalized spec (prompt already resolved)."""
    return {
        "tenant_id": tenant_id,
        "status": JobStatus.QUEUED,
        "prompt": spec["prompt"],
        "preset": spec.get("preset"),
        "params": spec.get("params") or {},
        "inputs": inputs,
        "model": spec.get("model") or default_model,
        "aspect_ratio": spec.get("aspect_ratio"),
        "output_format": spec.get("output_format") or "png",
        "metadata": spec.get("metadata") or {},
        "webhook_url": spec.get("webhook_url"),
        "batch_id": None,
        "price": int(spec.get("price") or 0),
        "attempts": 0,
        "created_at": timeutil.now(),
        "started_at": None,
        "finished_at": None,
        "lease_until": None,
        "cancel_requested": False,
        "enqueued": False,
        "task_gen": 0,
        "hold": None,  # the lane while held (dispatch/lanes.py); None once its task exists
        "tier": spec.get("tier") or "interactive",
        "output": None,
        "error": None,
        "quality_request": spec.get("quality_request"),  # what it asked of verification (quality/plan.py)
        "reuse": spec.get("reuse") is not False,  # may be delivered an identical request's image
        "trace": tracing.current(),  # the trace it was accepted under: its attempts join it
    }


def new_job(
    services: Services, tenant_id: str, job_id: str, req: GenerationRequest, field_prefix: str = ""
) -> dict[str, Any]:
    """The document of a new queued job (inputs staged; nothing else written)."""
    if req.preset is not None:
        prompt = presets.resolve(req.preset, req.params, len(req.images), field_prefix)
    else:
        prompt = req.prompt or ""
    plan = quality_plan.plan_for(
        req.preset, req.verify, req.max_regenerations, req.require_quality_pass, field_prefix
    )
    bucket = services.settings.input_bucket
    decoded = check_inputs(services, tenant_id, bucket, req.images, field_prefix)
    inputs = stage_inputs(services, tenant_id, job_id, req.images, decoded)  # only once all are valid
    model = req.model or services.settings.default_model
    asked = quality_plan.requested(req.verify, req.max_regenerations, req.require_quality_pass)
    spec = {
        **req.model_dump(),
        "prompt": prompt,
        "price": pricing.price(model, req.preset, plan.steps),
        "quality_request": asked,
    }
    return job_document(tenant_id, spec, inputs, services.settings.default_model)


def enqueue(services: Services, job_id: str, generation: int = 0, delay_s: float = 0.0) -> bool:
    """After the job's commit: its task (to run `delay_s` from now), flagged on the job; False
    leaves it to the repair sweep."""
    return tasks.enqueue(
        services,
        tasks.Generate(job_id=job_id, gen=generation),
        lambda: store.mark_enqueued(services.firestore.db, job_id, tasks.check_at(services, tasks.Generate)),
        delay_s,
    )


def submit(
    services: Services, caller: Caller, payload: Any, req: GenerationRequest, idem: str | None
) -> Answer:
    """Accept one generation: job + idempotency record + debit in one optimistic commit
    (idempotency.create_once), then the task."""
    key = Key.parse(caller.owner, idem, "POST", "/v1/generations", payload)
    db = services.firestore.db
    if key is not None:
        replay = key.check(key.ref(db).get())
        if replay is not None:
            return replay.answer()
    urls.check(services.settings, req.webhook_url, "webhook_url")
    job_id = ids.new_id("gen")
    if any(uri.startswith("data:") for uri in req.images):
        # data: inputs are stored before the commit: refuse first what the commit would refuse
        # (it checks again, atomically, and debits). Without them the commit alone decides.
        plan = quality_plan.plan_for(req.preset, req.verify, req.max_regenerations, req.require_quality_pass)
        price = pricing.price(req.model or services.settings.default_model, req.preset, plan.steps)
        debit = credits.job_debit(job_id, price)
        with account_events.refusals(services, caller.tenant_id):
            credits.precheck(db, credits.Admission(caller.tenant_id, debit, caller.max_in_flight))
    doc = {
        **new_job(services, caller.tenant_id, job_id, req),
        "subject": caller.subject,
        "token_id": caller.token_id,
    }
    accepted = Accepted(
        id=job_id,
        status=JobStatus.QUEUED,
        created_at=timeutil.iso(doc["created_at"]) or "",
        links=views.links(services, job_id),
    )
    body = accepted.model_dump(exclude_none=True)
    headers = {"Location": accepted.links.self}
    staged: list[str] = []
    with account_events.refusals(services, caller.tenant_id):
        replay = store.create(db, job_id, doc, key, (202, body, headers), caller.max_in_flight,
                              caller.token_id, services.settings.purse_slices, staged)  # fmt: skip
    if replay is not None:
        return replay.answer()
    enqueue(services, job_id)
    account_events.enqueue(services, staged)
    # The dispatcher measures singles too (their call rate, the typical attempt behind `eta`), now
    # and then even when no batch runs.
    dispatch.keep_measured(services, dispatch.pool(services.settings))
    return Answer(202, body, headers)


def _check_id(job_id: str) -> None:
    """404 for anything that cannot be one of our ids (no Firestore read, no odd document names)."""
    if not ids.looks_like(job_id, "gen"):
        raise NotFound(f"no generation {job_id[:64]!r}", {"id": job_id[:64]})


def _owned(services: Services, caller: Caller, job_id: str) -> tuple[JobDoc, dt.datetime | None]:
    _check_id(job_id)
    snapshot = store.ref(services.firestore.db, job_id).get()
    job = job_of(snapshot.to_dict()) if snapshot.exists else None
    if job is None or not caller.sees(job):  # another end user's job is as absent as another tenant's
        raise NotFound(f"no generation {job_id!r}", {"id": job_id})
    return job, snapshot.update_time


def get(
    services: Services,
    caller: Caller,
    job_id: str,
    wait_s: int = 0,
    known: Callable[[str], bool] | None = None,
    include_timeline: bool = False,
) -> tuple[Generation, str, int | None]:
    """The generation, its ETag and a polling hint (None once terminal). With `wait_s` (Prefer:
    wait), a job that is not final and is still what the caller has (`known`: its If-None-Match;
    without one, what this read found) is watched until it changes or the time is up."""
    job, updated = _owned(services, caller, job_id)
    view = views.generation(services, job_id, job)
    etag = views.etag(job_id, updated, view.waiting_reason)
    if wait_s and job["status"] not in TERMINAL and (known is None or known(etag)):
        ref = store.ref(services.firestore.db, job_id)
        changed = firestore.wait_for(ref, lambda snapshot: snapshot.update_time != updated, wait_s)
        if changed is not None:
            job, updated = job_of(changed.to_dict() or job), changed.update_time
            view = views.generation(services, job_id, job)
            etag = views.etag(job_id, updated, view.waiting_reason)
    if include_timeline:
        view = view.model_copy(update={"timeline": views.timeline(services, job_id, job)})
    return view, etag, views.poll_after(job)


def finished_within(services: Services, caller: Caller, job_id: str, wait_s: int) -> Generation | None:
    """The generation once final, if it gets there within `wait_s` (POST with Prefer: wait)."""
    ref = store.ref(services.firestore.db, job_id)
    final = firestore.wait_for(
        ref, lambda snapshot: (snapshot.to_dict() or {}).get("status") in TERMINAL, wait_s
    )
    job = job_of(final.to_dict()) if final is not None else None
    return views.generation(services, job_id, job) if job is not None and caller.sees(job) else None


def output_url(services: Services, caller: Caller, job_id: str) -> str:
    """Where the output can be downloaded now; 409 until the job has succeeded."""
    job, _ = _owned(services, caller, job_id)
    view = views.generation(services, job_id, job)
    if view.output is None:
        raise Conflict(
            f"generation {job_id} has no output (status {job['status']})", {"status": job["status"]}
        )
    return view.output.url


def cancel(services: Services, caller: Caller, job_id: str) -> Generation:
    """Cancel a queued job, or ask a running one to stop; 409 once terminal."""
    _check_id(job_id)
    if caller.subject is not None:
        _owned(services, caller, job_id)  # 404 for another end user's job, before anything changes
    with webhooks.events(services) as outbox:
        job = store.cancel(services.firestore.db, job_id, caller.tenant_id, outbox)  # JobFinished: 409
    if job is None:
        raise NotFound(f"no generation {job_id!r}", {"id": job_id})
    return views.generation(services, job_id, job)
