"""Batches as clients read them: status with live counts, item pages, the results export."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from lote import ids, tasks, timeutil
from lote.batches import fanout, progress, store
from lote.batches.schemas import MAX_MANIFEST_ITEMS, Batch, Item, ItemOutput, ItemsPage
from lote.batches.service import owned
from lote.dispatch import lanes
from lote.dispatch import views as dispatch_views
from lote.errors import InvalidRequest
from lote.jobs.schemas import JobError
from lote.jobs.views import poll_after
from lote.quality.schemas import Quality
from lote.services import Services
from lote.statuses import JobStatus
from lote.tenants.service import Caller


def get(services: Services, caller: Caller, batch_id: str) -> tuple[Batch, str, int | None]:
    """The batch with its counts, an ETag and a poll hint: counted live (count() queries, never
    reading items) up to LOTE_BATCH_LIVE_COUNT_MAX items, else as last recorded, a count being asked
    for when that is stale; either way a bounded number of reads."""
    batch, _ = owned(services, caller, batch_id)
    settings = services.settings
    if progress.counted_live(batch, settings.batch_live_count_max):
        tally, chunks_done, batch = fanout.observe(services, batch_id, batch)
        processed = int(tally.get(JobStatus.SUCCEEDED, 0)) + int(tally.get(JobStatus.FAILED, 0))
        rate = fanout.throughput_per_s(services, batch_id, batch, processed)
    else:
        tally, chunks_done, rate, _ = progress.recorded(batch)
        now = timeutil.now()
        if progress.stale(batch, now, settings.batch_refresh_s):
            slot = int(now.timestamp() // settings.batch_refresh_s)
            tasks.enqueue(services, tasks.RefreshBatch(batch_id=batch_id, slot=slot), lambda: None)
    share = dispatch_views.lane_share(services, lanes.batch_lane(batch_id))
    view = progress.render(services.settings.api_url, batch_id, batch, tally, chunks_done, rate,
                           share.waiting_reason, share.rate_per_s)  # fmt: skip
    etag = ids.sha256_hex(view.model_dump_json(exclude={"eta", "throughput_per_min"}))[:24]
    hint = (
        None
        if batch.get("finished_at")
        else poll_after({"status": JobStatus.RUNNING, "created_at": batch["created_at"]})
    )
    return view, etag, hint


def _token(index: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"i": index}).encode()).decode().rstrip("=")


def _after(token: str | None) -> int | None:
    if token is None:
        return None
    try:
        return int(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["i"])
    except (ValueError, KeyError, TypeError, OverflowError):
        raise InvalidRequest("page_token is not valid", {"field": "page_token"}) from None


def _item(services: Services, snapshot: Any) -> Item:
    job = snapshot.to_dict()
    output = None
    if job["status"] == JobStatus.SUCCEEDED and job.get("output"):
        stored = job["output"]
        url = f"{services.settings.api_url}/v1/generations/{snapshot.id}/output"
        output = ItemOutput(
            url=url, **{k: stored[k] for k in ("mime_type", "width", "height", "bytes", "sha256")}
        )
    error = JobError(**job["error"]) if job["status"] == JobStatus.FAILED and job.get("error") else None
    return Item(
        id=snapshot.id,
        index=job["index"],
        reference=job["reference"],
        status=job["status"],
        attempts=job.get("attempts", 0),
        output=output,
        error=error,
        quality=Quality(**job["quality"]) if job.get("quality") else None,
        reused_from=job.get("reused_from"),
    )


def items(
    services: Services, caller: Caller, batch_id: str, status: str | None, page_size: int, token: str | None
) -> ItemsPage:
    """A page of items in input order."""
    owned(services, caller, batch_id)
    if status is not None and status not in store.STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(store.STATUSES)}", {"field": "status"})
    if not 1 <= page_size <= 1000:
        raise InvalidRequest("page_size must be 1-1000", {"field": "page_size"})
    found = store.page_items(services.firestore.db, batch_id, status, page_size, _after(token))
    page = [_item(services, s) for s in found]
    return ItemsPage(items=page, next_page_token=_token(page[-1].index) if len(page) == page_size else None)


def results(services: Services, caller: Caller, batch_id: str, from_index: int = 0) -> Iterator[bytes]:
    """Every item as a JSON line, in input order (1,000 per query), from the item `from_index` on."""
    if not 0 <= from_index <= MAX_MANIFEST_ITEMS:
        raise InvalidRequest(f"from_index must be 0-{MAX_MANIFEST_ITEMS}", {"field": "from_index"})
    owned(services, caller, batch_id)

    def lines() -> Iterator[bytes]:
        after = from_index - 1 if from_index else None
        while True:
            found = store.page_items(services.firestore.db, batch_id, None, 1000, after)
            for snapshot in found:
                yield (_item(services, snapshot).model_dump_json(exclude_none=False) + "\n").encode()
            if len(found) < 1000:
                return
            after = found[-1].get("index")

    return lines()
