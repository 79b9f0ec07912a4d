"""Batches for the synchronous client: create (inline, or a manifest uploaded for you), wait, items,
results and downloads."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from lote_client import _download, _shared
from lote_client._http import Request, Transport, decode, raise_for
from lote_client.errors import ConnectionFailed, WaitTimeout
from lote_client.models import Batch, BatchAccepted, BatchSummary, Item

if TYPE_CHECKING:
    from lote_client.client import Uploads


class Batches:
    """Many images: create (inline, or a manifest uploaded for you), wait, items, results, download."""

    def __init__(self, transport: Transport, uploads: Uploads) -> None:
        self._t, self._uploads = transport, uploads

    @staticmethod
    def from_file(path: str | Path) -> list[dict[str, Any]]:
        """Items from a CSV or JSONL file (see the README for the columns)."""
        return _shared.read_items(Path(path))

    def create(
        self,
        items: Sequence[dict[str, Any]] | str | Path,
        *,
        defaults: dict[str, Any] | None = None,
        priority: str | None = None,
        idempotency_key: str | None = None,
        inline_limit: int = _shared.INLINE_LIMIT,
        **fields: Any,
    ) -> BatchAccepted:
        """Submit a batch; over `inline_limit` items (10,000) they go up as a JSONL manifest first."""
        listed = self.from_file(items) if isinstance(items, str | Path) else list(items)
        payload = _shared.body(defaults=defaults, priority=priority, **fields)
        if len(listed) > inline_limit:
            payload["items_url"] = self._uploads.put(
                _shared.manifest(listed), "application/x-ndjson", "items.jsonl"
            )
        else:
            payload["items"] = listed
        return BatchAccepted.model_validate(
            self._t.json(Request.create("/v1/batches", payload, idempotency_key))
        )

    def get(self, batch_id: str) -> Batch:
        """The batch as it is now."""
        return Batch.model_validate(self._t.json(Request("GET", f"/v1/batches/{batch_id}")))

    def wait(
        self,
        batch_id: str,
        on_progress: Callable[[Batch], object] | None = None,
        timeout: float | None = None,
    ) -> Batch:
        """Block until the batch is final, polling at the server's `Retry-After`; `on_progress(batch)`
        whenever its counts or status change. WaitTimeout after `timeout` (the batch goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            response = self._t.send(Request("GET", f"/v1/batches/{batch_id}"))
            batch = Batch.model_validate(decode(response))
            state = (batch.status, batch.counts.model_dump_json())
            if on_progress is not None and state != seen:
                on_progress(batch)
            seen = state
            if batch.done:
                return batch
            pause = float(response.headers.get("Retry-After") or 2)
            if deadline is not None and time.monotonic() + pause > deadline:
                raise WaitTimeout(0, "wait_timeout", f"batch {batch_id} is not final after {timeout} s")
            time.sleep(pause)

    def iter_items(self, batch_id: str, status: str | None = None, page_size: int = 1000) -> Iterator[Item]:
        """Every item in input order (optionally of one status); pages fetched as you go."""
        token = None
        while True:
            params = _shared.body(status=status, page_size=page_size, page_token=token)
            page = self._t.json(Request("GET", f"/v1/batches/{batch_id}/items", params=params))
            yield from (Item.model_validate(item) for item in page["items"])
            token = page.get("next_page_token")
            if not token:
                return

    def results(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """Every item of results.jsonl, streamed; a broken stream resumes after the last item read
        (`from_index`), so no item is yielded twice or skipped."""
        start = 0
        for attempt in range(1, self._t.retry.attempts + 1):
            try:
                for row in self._stream(batch_id, start):
                    start = int(row["index"]) + 1
                    yield row
                return
            except httpx.TransportError as exc:
                if attempt == self._t.retry.attempts:
                    raise ConnectionFailed(0, "connection_failed", str(exc)) from None
                time.sleep(self._t.retry.backoff(attempt))

    def _stream(self, batch_id: str, start: int) -> Iterator[dict[str, Any]]:
        url = f"{self._t.config.base_url}/v1/batches/{batch_id}/results.jsonl"
        params = {"from_index": start} if start else None
        with self._t.http.stream("GET", url, params=params, headers=self._t.config.headers()) as response:
            if response.status_code >= 400:
                response.read()
                raise_for(response)
            for line in response.iter_lines():
                if line.strip():
                    yield json.loads(line)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel: queued items at once, running ones finish. {status, canceled, running}."""
        answer: dict[str, Any] = self._t.json(Request("POST", f"/v1/batches/{batch_id}/cancel"))
        return answer

    def retry(
        self, batch_id: str, include_permanent: bool = False, error_codes: list[str] | None = None
    ) -> int:
        """Queue failed items again (paid again, refunded if they fail again); how many (a large
        batch's are queued in the background: then how many failed items it is going through). Not
        retried after a lost answer (it may have been applied): check the batch, then call again."""
        payload = _shared.body(include_permanent=include_permanent or None, error_codes=error_codes)
        call = Request("POST", f"/v1/batches/{batch_id}/retry", payload, safe=False)
        answer = self._t.json(call)
        return int(answer["retried"]) + int(answer.get("retrying", 0))

    def list(self, status: str | None = None) -> Iterator[BatchSummary]:
        """The tenant's batches, newest first."""
        token = None
        while True:
            page = self._t.json(
                Request("GET", "/v1/batches", params=_shared.body(status=status, page_token=token))
            )
            yield from (BatchSummary.model_validate(b) for b in page["batches"])
            token = page.get("next_page_token")
            if not token:
                return

    def download(
        self,
        batch_id: str,
        out_dir: str | Path,
        concurrency: int = 16,
        on_file: Callable[[_download.FileResult], object] | None = None,
    ) -> _download.Report:
        """Every succeeded item's image into `out_dir`, named by its reference (made safe; a later
        reference differing only in case gets a short hash, for case-insensitive file systems); files
        already there with the right SHA-256 are skipped (so a rerun resumes); failures are reported,
        not raised."""
        items = self.iter_items(batch_id)  # all of them: each reserves its file name (FileNames)
        return _download.batch(self._t, items, Path(out_dir), concurrency, on_file)
