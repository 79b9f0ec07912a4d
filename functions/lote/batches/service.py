"""Batches as the API sees them: submit, status, items, results, retry, cancel, list, uploads."""

from __future__ import annotations

import base64
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lote import bulk, ids, tasks, timeutil
from lote.access import store as tokens
from lote.answers import Answer
from lote.batches import cancel as batch_cancel
from lote.batches import fanout, manifest, progress, store
from lote.batches import retry as batch_retry
from lote.batches.documents import BatchDoc, batch_of, maybe_batch
from lote.batches.schemas import (
    MAX_MANIFEST_ITEMS,
    BatchAccepted,
    BatchLinks,
    BatchPage,
    BatchRequest,
    BatchSummary,
    CancelAnswer,
    RetryAnswer,
    RetryRequest,
)
from lote.billing import alerts as account_events
from lote.billing import credits, pricing
from lote.errors import InvalidRequest, NotFound
from lote.idempotency import Key, create_once
from lote.jobs.service import tenant_upload_prefix
from lote.services import Services
from lote.statuses import BatchStatus, JobStatus
from lote.tenants.service import Caller
from lote.webhooks import urls

MANIFEST_MAX_BYTES = 256 * 1024 * 1024


def links(services: Services, batch_id: str) -> BatchLinks:
    """URLs of a batch."""
    return progress.links(services.settings.api_url, batch_id)


def _raw_items(services: Services, caller: Caller, req: BatchRequest) -> list[Any]:
    if req.items is not None:
        return list(req.items)
    bucket, _, name = (req.items_url or "").removeprefix("gs://").partition("/")
    if bucket != services.settings.input_bucket or not name.startswith(
        tenant_upload_prefix(caller.tenant_id)
    ):
        raise InvalidRequest(
            f"items_url must be in gs://{services.settings.input_bucket}/{tenant_upload_prefix(caller.tenant_id)}",
            {"field": "items_url"},
        )
    data = services.storage.read(bucket, name, MANIFEST_MAX_BYTES)
    if data is None:
        raise InvalidRequest(f"{req.items_url} does not exist", {"field": "items_url"})
    return manifest.parse_jsonl(data, MAX_MANIFEST_ITEMS)


def batch_document(
    tenant_id: str,
    req: BatchRequest,
    total: int,
    chunks: list[Any],
    manifest_at: dict[str, str],
    charged: int,
) -> dict[str, Any]:
    """The document of a new queued batch, charged `charged` credits (the debit in its commit)."""
    return {
        "tenant_id": tenant_id,
        "status": BatchStatus.QUEUED,
        "total": total,
        "chunks": [{"r": c} for c in chunks],
        "manifest": manifest_at,
        "webhook_url": req.webhook_url,
        "webhook_events": list(req.webhook_events),
        "metadata": req.metadata,
        "created_at": timeutil.now(),
        "started_at": None,
        "finished_at": None,
        "fanout_enqueued": False,
        "check_gen": 0,
        "cancel_requested": False,
        "charged": charged,
        "refunded": 0,
        "completions": 0,
        "source": "inline" if req.items is not None else "manifest",
        "priority": req.priority,
    }


def _admit(batch: Any, db: Any, admission: credits.Admission, token_id: str | None, images: int) -> None:
    """The batch's debit, and its items counted against the client token's image cap (a retried
    commit stages its account events again: only the last attempt's count)."""
    admission.events.clear()
    credits.admit(batch, db, admission)
    if token_id is not None:
        tokens.charge(batch, db, token_id, images)


def submit(services: Services, caller: Caller, payload: Any, req: BatchRequest, idem: str | None) -> Answer:
    """Accept a batch in O(1) writes: manifest object, batch document, one fan-out task."""
    db = services.firestore.db
    key = Key.parse(caller.owner, idem, "POST", "/v1/batches", payload)
    if key is not None:
        replay = key.check(key.ref(db).get())
        if replay is not None:
            return replay.answer()
    urls.check(services.settings, req.webhook_url, "webhook_url")
    specs = manifest.validate(
        _raw_items(services, caller, req),
        req.defaults,
        caller.tenant_id,
        services.settings.input_bucket,
        services.settings.default_model,
    )
    for spec in specs:  # the tier's price: express costs more, economy less (pricing.json)
        spec["price"] = pricing.tiered(spec["price"], req.priority)
    total_price = sum(spec["price"] for spec in specs)
    batch_id = ids.new_id("bat")
    admission = credits.Admission(caller.tenant_id, credits.batch_debit(batch_id, total_price))
    with account_events.refusals(services, caller.tenant_id):
        credits.precheck(db, admission)
    data, chunks = manifest.encode(specs)
    bucket, name = services.settings.manifest_bucket, f"batches/{caller.tenant_id}/{batch_id}/items.jsonl"
    at = {"bucket": bucket, "object": name}
    doc = {**batch_document(caller.tenant_id, req, len(specs), chunks, at, charged=total_price),
           "token_id": caller.token_id}  # fmt: skip
    accepted = BatchAccepted(
        id=batch_id,
        status=BatchStatus.QUEUED,
        total=len(specs),
        created_at=timeutil.iso(doc["created_at"]) or "",
        links=links(services, batch_id),
    )
    body, headers = accepted.model_dump(), {"Location": accepted.links.self}
    # The manifest upload and the admission commit are independent: run them side by side. A batch
    # whose commit fails leaves an unreferenced manifest, which the bucket's lifecycle deletes.
    with ThreadPoolExecutor(max_workers=1) as pool:
        upload = pool.submit(services.storage.put_once, bucket, name, data, "application/x-ndjson")
        with account_events.refusals(services, caller.tenant_id):
            replay = create_once(
                db, store.ref(db, batch_id), doc, key, (202, body, headers),
                also=lambda batch: _admit(batch, db, admission, caller.token_id, len(specs)),
            )  # fmt: skip
        upload.result()
    if replay is not None:
        return replay.answer()
    account_events.enqueue(services, admission.events)
    enqueue_plan(services, batch_id)
    return Answer(202, body, headers)


def enqueue_plan(services: Services, batch_id: str) -> bool:
    """After the batch's commit: its fan-out task, flagged on the batch; False leaves it to the sweep."""
    return tasks.enqueue(
        services,
        tasks.PlanFanout(batch_id=batch_id),
        lambda: store.ref(services.firestore.db, batch_id).update({"fanout_enqueued": True}),
    )


def owned(services: Services, caller: Caller, batch_id: str) -> tuple[BatchDoc, dt.datetime | None]:
    """The caller's batch and its update time; 404 for anything else."""
    if not ids.looks_like(batch_id, "bat"):
        raise NotFound(f"no batch {batch_id[:64]!r}", {"id": batch_id[:64]})
    snapshot = store.ref(services.firestore.db, batch_id).get()
    batch = maybe_batch(snapshot.to_dict()) if snapshot.exists else None
    if batch is None or batch.get("tenant_id") != caller.tenant_id:
        raise NotFound(f"no batch {batch_id!r}", {"id": batch_id})
    return batch, snapshot.update_time


def retry(services: Services, caller: Caller, batch_id: str, req: RetryRequest) -> RetryAnswer:
    """Queue failed items again (each at most once, even under concurrent calls).

    A batch counted live (up to LOTE_BATCH_LIVE_COUNT_MAX items) is retried here and the answer
    counts what was queued. A larger one is only marked here: its failed items are queued again
    page by page in the background (batches/retry.py), and the answer says how many failed items
    its recorded tally shows (`retrying`: those the filter wants are queued as it goes)."""
    owned(services, caller, batch_id)
    db = services.firestore.db
    batch = batch_of(store.ref(db, batch_id).get().to_dict())
    if not progress.counted_live(batch, services.settings.batch_live_count_max):
        batch_retry.request(services, batch_id, req)  # BatchCanceled: 409
        tally, _, _, _ = progress.recorded(batch)
        return RetryAnswer(retried=0, retrying=int(tally.get(JobStatus.FAILED, 0)))
    failed = [
        s
        for s in store.items(db, batch_id).where(filter=_status_filter(JobStatus.FAILED)).stream()
        if batch_retry.wanted(req.error_codes, req.include_permanent, s.get("error") or {})
    ]
    if not failed:
        return RetryAnswer(retried=0)
    retried = batch_retry.requeue(services, batch_id, failed)  # BatchCanceled: 409
    reopened = batch_of(store.ref(db, batch_id).get().to_dict())
    fanout.start_checker(services, batch_id, int(reopened["check_gen"]))
    return RetryAnswer(retried=retried)


def _status_filter(status: str) -> Any:
    from google.cloud.firestore import FieldFilter

    return FieldFilter("status", "==", status)


def cancel(services: Services, caller: Caller, batch_id: str) -> CancelAnswer:
    """Queued items become canceled (their tasks no-op); running ones finish.

    A batch counted live (up to LOTE_BATCH_LIVE_COUNT_MAX items) is canceled here, its first page
    at least, and the answer counts what it did. A larger one is only marked here: its items are
    canceled page by page in the background (batches/cancel.py), and the answer estimates from the
    last recorded tally what that will cancel (`canceling`) and what still runs, so the request does
    the same work whatever the batch's size."""
    owned(services, caller, batch_id)
    db = services.firestore.db
    batch = store.request_cancel(db, batch_id)  # BatchCompleted: 409
    if not progress.counted_live(batch, services.settings.batch_live_count_max):
        tasks.enqueue(services, tasks.CancelItems(batch_id=batch_id), lambda: None)
        tally, _, _, _ = progress.recorded(batch)
        running = tally[JobStatus.RUNNING]
        left = progress.remaining(tally, int(batch["total"])) - running
        return CancelAnswer(status=BatchStatus.CANCELED, canceled=0, running=running, canceling=max(0, left))
    canceled, following = batch_cancel.page(services, batch_id, 0, int(batch["total"]))
    running = bulk.count(store.items(db, batch_id).where(filter=_status_filter(JobStatus.RUNNING)))
    if following is None:
        batch_cancel.finish(services, batch_id)
        return CancelAnswer(status=BatchStatus.CANCELED, canceled=canceled, running=running, canceling=0)
    tasks.enqueue(services, tasks.CancelItems(batch_id=batch_id, start=following, seq=1), lambda: None)
    left = int(batch["total"]) - canceled - running
    return CancelAnswer(
        status=BatchStatus.CANCELED, canceled=canceled, running=running, canceling=max(1, left)
    )


def list_batches(
    services: Services, caller: Caller, status: str | None, token: str | None, page_size: int = 50
) -> BatchPage:
    """The tenant's batches, newest first."""
    if status is not None and status not in tuple(BatchStatus):
        raise InvalidRequest("status must be queued, running, completed or canceled", {"field": "status"})
    after = None
    if token is not None:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            after = (dt.datetime.fromisoformat(decoded["t"]), str(decoded["id"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidRequest("page_token is not valid", {"field": "page_token"}) from None
    found = store.page_batches(services.firestore.db, caller.tenant_id, status, page_size, after)
    summaries = [
        BatchSummary(
            id=s.id,
            status=s.get("status"),
            total=s.get("total"),
            created_at=timeutil.iso(s.get("created_at")) or "",
            finished_at=timeutil.iso(s.get("finished_at")),
            links=links(services, s.id),
        )
        for s in found
    ]
    next_token = None
    if len(found) == page_size:
        last = found[-1]
        next_token = base64.urlsafe_b64encode(
            json.dumps({"t": last.get("created_at").isoformat(), "id": last.id}).encode()
        ).decode()
    return BatchPage(batches=summaries, next_page_token=next_token)
