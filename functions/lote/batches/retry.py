"""A batch's retry of its failed items: at once for a batch counted live, in pages for a larger one.

A large batch's retry request only marks the batch (`retry_pending`: the filter and a generation)
and answers with the failed items its recorded tally shows; RetryItems tasks then go through its
items page by page, read by their derived ids as the cancel's pages are (batches/cancel.py), and
queue again the failed ones the filter wants, each page charging its items in the commit that
reopens the batch (402 stops the chain and records why in `retry_stopped`). A page is idempotent:
an item is queued again under an update-time precondition, and one already queued is not failed
any more; a page that lost such a race runs again. A newer request's generation supersedes an
older chain, and the repair sweep restarts a lost one (batch_store.retry_pending_before). The last
page starts the batch's checker.
"""

from __future__ import annotations

from typing import Any

from lote import bulk, tasks, timeutil
from lote.answers import Answer
from lote.batches import fanout, store
from lote.batches.documents import PendingRetry, maybe_batch
from lote.batches.schemas import RetryRequest
from lote.billing import credits
from lote.billing.credits import InsufficientCredits
from lote.billing.spend import SpendCapReached
from lote.dispatch import lanes
from lote.jobs import store as job_store
from lote.services import Services
from lote.statuses import JobStatus

PAGE = 500  # items per page (one batched read, one bulk write, one charge)


def wanted(error_codes: list[str] | None, include_permanent: bool, error: dict[str, Any]) -> bool:
    """Whether a failed item is retried: retryable failures by default; permanent ones (a safety
    block gives the same answer again) only when asked for, by `include_permanent` or by code."""
    code = error.get("code")
    if error_codes is not None and code not in error_codes:
        return False
    named = error_codes is not None and code in error_codes
    return bool(error.get("retryable", True)) or include_permanent or named


def requeue(services: Services, batch_id: str, failed: list[Any]) -> int:
    """Charge `failed` (snapshots) and queue them again, held in the batch's lane; how many were.
    BatchCanceled (409), InsufficientCredits (402) or SpendCapReached (403) before anything is written."""
    from google.cloud.firestore import Client

    if not failed:
        return 0
    db = services.firestore.db
    price = sum(int(s.get("price") or 0) for s in failed)
    tenant_id = str(failed[0].get("tenant_id"))
    # Refused early, and under a spend cap the room the purse's slices hold is gathered for it.
    credits.precheck(db, credits.Admission(tenant_id, credits.batch_debit(batch_id, price)))
    batch = store.reopen(db, batch_id, price)
    lane = lanes.batch_lane(batch_id)
    updates = [
        (
            s.reference,
            {
                "status": JobStatus.QUEUED,
                "error": None,
                "last_error": s.get("error"),
                "finished_at": None,
                "expires_at": None,
                "task_gen": int(s.get("task_gen") or 0) + 1,
                **lanes.hold_fields(lane, int(s.get("index") or 0)),
                "path": "online",  # a retried item is retried online, batch mode or not before
                "error_streak": 0,
                "retried_at": timeutil.now(),
            },
            Client.write_option(last_update_time=s.update_time),
        )
        for s in failed
    ]
    written = len(bulk.write(db, updates=updates).written)
    if written:  # held again in the batch's lane: the dispatcher releases them at the batch's share
        fanout.hold(services, batch_id, batch)
    return written


def page(services: Services, batch_id: str, pending: PendingRetry, start: int, total: int) -> int | None:
    """Queue again the wanted failed items among indexes [start, start + PAGE): the next page's
    start (this one again if an item changed under its precondition), or None after the last."""
    db = services.firestore.db
    refs = [job_store.ref(db, fanout.item_id(batch_id, i)) for i in range(start, min(total, start + PAGE))]
    found = [s for s in db.get_all(refs) if s.exists] if refs else []
    codes, permanent = pending.get("error_codes"), bool(pending.get("include_permanent"))
    failed = [
        s
        for s in found
        if (s.to_dict() or {}).get("status") == JobStatus.FAILED
        and wanted(codes, permanent, s.get("error") or {})
    ]
    if requeue(services, batch_id, failed) < len(failed):
        return start
    return start + PAGE if start + PAGE < total else None


def run(services: Services, batch_id: str, gen: int, start: int, seq: int) -> Answer:
    """One page (the RetryItems task); the next page is the next task, the last starts the checker."""
    db = services.firestore.db
    batch = maybe_batch(store.ref(db, batch_id).get().to_dict())
    pending = (batch or {}).get("retry_pending") or {}
    if batch is None or int(pending.get("gen", -1)) != gen:
        return Answer(200, {"result": "noop", "reason": "no such retry pending"})
    try:
        following = page(services, batch_id, pending, start, int(batch["total"]))
    except (store.BatchCanceled, InsufficientCredits, SpendCapReached) as exc:
        store.end_retry(db, batch_id, gen, {"at_index": start, "code": exc.code, "message": exc.message})
        return Answer(200, {"result": "stopped", "code": exc.code, "at_index": start})
    if following is not None:
        tasks.create(services, tasks.RetryItems(batch_id=batch_id, gen=gen, start=following, seq=seq + 1))
        return Answer(200, {"result": "page", "next": following})
    if store.end_retry(db, batch_id, gen):
        fanout.start_checker(
            services, batch_id, int((store.ref(db, batch_id).get().to_dict() or {})["check_gen"])
        )
    return Answer(200, {"result": "done"})


def request(services: Services, batch_id: str, req: RetryRequest) -> int:
    """Mark the batch for a paged retry and start its chain; its generation."""
    db = services.firestore.db
    batch = store.request_retry(db, batch_id, req.error_codes, req.include_permanent)
    pending = batch["retry_pending"]
    assert pending is not None  # request_retry has just written it
    gen = int(pending["gen"])
    tasks.enqueue(services, tasks.RetryItems(batch_id=batch_id, gen=gen), lambda: None)
    return gen
