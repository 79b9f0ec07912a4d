"""The asynchronous client: `AsyncLote`, the same calls as `Lote`, awaited."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import httpx

from lote_client import _download, _shared, webhooks
from lote_client._http import AsyncTransport, Config, Request, RetryPolicy, decode, raise_for
from lote_client.errors import ConnectionFailed, LoteError, WaitTimeout
from lote_client.models import (
    Accepted,
    Batch,
    BatchAccepted,
    BatchSummary,
    Generation,
    Item,
    Preset,
    SpendControls,
    Upload,
    Usage,
)

Image = str | Path


class AsyncUploads:
    """Local files sent through signed PUT URLs."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def put(self, data: bytes, content_type: str, filename: str | None = None) -> str:
        """Upload bytes; the `gs://` URI to use in requests."""
        digest = hashlib.sha256(data).hexdigest()  # named by content: see Lote.uploads.put
        asked = _shared.body(content_type=content_type, max_bytes=len(data), filename=filename, sha256=digest)
        answer = Upload.model_validate(await self._t.json(Request.create("/v1/uploads", asked)))
        for attempt in range(1, self._t.retry.attempts + 1):
            try:
                stored = await self._t.http.put(answer.upload_url, content=data, headers=answer.headers)
            except httpx.TransportError as exc:
                if attempt == self._t.retry.attempts:
                    raise ConnectionFailed(0, "upload_failed", str(exc)) from exc
                await asyncio.sleep(self._t.retry.backoff(attempt))
                continue
            if stored.status_code < 300:
                return answer.gs_uri
            if stored.status_code < 500 or attempt == self._t.retry.attempts:
                raise LoteError(stored.status_code, "upload_failed", stored.text[:500])
            await asyncio.sleep(
                self._t.retry.delay(attempt, stored.headers) or self._t.retry.backoff(attempt)
            )
        raise AssertionError("unreachable")

    async def image(self, path: Image) -> str:
        """Upload a local image file; its `gs://` URI."""
        file = Path(path)
        return await self.put(file.read_bytes(), _shared.content_type(file), _shared.upload_name(file))


class AsyncGenerations:
    """Single images, awaited."""

    def __init__(self, transport: AsyncTransport, uploads: AsyncUploads) -> None:
        self._t, self._uploads = transport, uploads

    @overload
    async def create(
        self,
        prompt: str | None = None,
        *,
        preset: str | None = None,
        params: dict[str, str] | None = None,
        images: Sequence[Image] = (),
        wait: Literal[False] = False,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Accepted: ...

    @overload
    async def create(
        self,
        prompt: str | None = None,
        *,
        preset: str | None = None,
        params: dict[str, str] | None = None,
        images: Sequence[Image] = (),
        wait: Literal[True] | float,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Generation: ...

    async def create(
        self,
        prompt: str | None = None,
        *,
        preset: str | None = None,
        params: dict[str, str] | None = None,
        images: Sequence[Image] = (),
        wait: bool | float = False,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> Accepted | Generation:
        """See `Lote.generations.create`."""
        refs = [await self._uploads.image(i) if _shared.is_local(i) else str(i) for i in images]
        payload = _shared.body(prompt=prompt, preset=preset, params=params, images=refs or None, **fields)
        hold = _shared.WAIT_MAX_S if wait is True else min(_shared.WAIT_MAX_S, int(wait or 0))
        call = Request.create(
            "/v1/generations", payload, idempotency_key, {"Prefer": f"wait={hold}"} if hold else None
        )
        call.timeout_s = self._t.config.timeout_s + hold
        started = time.monotonic()
        answer = await self._t.send(call)
        if answer.status_code == 200:  # finished within the held request
            return Generation.model_validate(decode(answer))
        accepted = Accepted.model_validate(decode(answer))
        if not wait:
            return accepted
        left = None if wait is True else max(0.0, float(wait) - (time.monotonic() - started))
        return await self.wait(accepted.id, timeout=left)

    async def get(self, generation_id: str) -> Generation:
        """The generation as it is now."""
        return Generation.model_validate(
            await self._t.json(Request("GET", f"/v1/generations/{generation_id}"))
        )

    async def wait(self, generation_id: str, timeout: float | None = None) -> Generation:
        """See `Lote.generations.wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        etag: str | None = None
        while True:
            left = 30.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(0, "wait_timeout", f"{generation_id} is not final after {timeout} s")
            hold = max(1, min(30, int(left)))
            headers = {"Prefer": f"wait={hold}", **({"If-None-Match": etag} if etag else {})}
            call = Request("GET", f"/v1/generations/{generation_id}", headers=headers)
            call.timeout_s = self._t.config.timeout_s + hold
            response = await self._t.send(call)
            if response.status_code == 304:
                continue
            generation = Generation.model_validate(decode(response))
            if generation.done:
                return generation
            etag = response.headers.get("ETag")

    async def cancel(self, generation_id: str) -> Generation:
        """Cancel: a queued image at once, a running one when its attempt ends."""
        answer = await self._t.json(Request("POST", f"/v1/generations/{generation_id}/cancel"))
        return Generation.model_validate(answer)

    async def download(self, generation: str | Generation, path: str | Path) -> Path:
        """See `Lote.generations.download`."""
        found = await self.get(generation) if isinstance(generation, str) else generation
        if found.status != "succeeded" or found.output is None:
            raise LoteError(0, "not_succeeded", f"{found.id} is {found.status}: there is no image")
        target = Path(path)
        if target.is_dir():
            target = target / f"{found.id}{_shared.EXTENSIONS.get(found.output.mime_type, '.bin')}"
        await _download.fetch_async(
            self._t, f"/v1/generations/{found.id}/output", target, found.output.sha256
        )
        return target


class AsyncBatches:
    """Many images, awaited."""

    def __init__(self, transport: AsyncTransport, uploads: AsyncUploads) -> None:
        self._t, self._uploads = transport, uploads

    async def create(
        self,
        items: Sequence[dict[str, Any]] | str | Path,
        *,
        defaults: dict[str, Any] | None = None,
        priority: str | None = None,
        idempotency_key: str | None = None,
        inline_limit: int = _shared.INLINE_LIMIT,
        **fields: Any,
    ) -> BatchAccepted:
        """See `Lote.batches.create`."""
        listed = _shared.read_items(Path(items)) if isinstance(items, str | Path) else list(items)
        payload = _shared.body(defaults=defaults, priority=priority, **fields)
        if len(listed) > inline_limit:
            manifest = _shared.manifest(listed)
            payload["items_url"] = await self._uploads.put(manifest, "application/x-ndjson", "items.jsonl")
        else:
            payload["items"] = listed
        answer = await self._t.json(Request.create("/v1/batches", payload, idempotency_key))
        return BatchAccepted.model_validate(answer)

    async def get(self, batch_id: str) -> Batch:
        """The batch as it is now."""
        return Batch.model_validate(await self._t.json(Request("GET", f"/v1/batches/{batch_id}")))

    async def wait(
        self,
        batch_id: str,
        on_progress: Callable[[Batch], object] | None = None,
        timeout: float | None = None,
    ) -> Batch:
        """See `Lote.batches.wait`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            response = await self._t.send(Request("GET", f"/v1/batches/{batch_id}"))
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
            await asyncio.sleep(pause)

    async def iter_items(
        self, batch_id: str, status: str | None = None, page_size: int = 1000
    ) -> AsyncIterator[Item]:
        """Every item in input order (optionally of one status)."""
        token = None
        while True:
            params = _shared.body(status=status, page_size=page_size, page_token=token)
            page = await self._t.json(Request("GET", f"/v1/batches/{batch_id}/items", params=params))
            for item in page["items"]:
                yield Item.model_validate(item)
            token = page.get("next_page_token")
            if not token:
                return

    async def results(self, batch_id: str) -> AsyncIterator[dict[str, Any]]:
        """See `Lote.batches.results`."""
        start = 0
        url = f"{self._t.config.base_url}/v1/batches/{batch_id}/results.jsonl"
        for attempt in range(1, self._t.retry.attempts + 1):
            params = {"from_index": start} if start else None
            headers = self._t.config.headers()
            try:
                async with self._t.http.stream("GET", url, params=params, headers=headers) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise_for(response)
                    async for line in response.aiter_lines():
                        if line.strip():
                            row = json.loads(line)
                            start = int(row["index"]) + 1
                            yield row
                return
            except httpx.TransportError as exc:
                if attempt == self._t.retry.attempts:
                    raise ConnectionFailed(0, "connection_failed", str(exc)) from exc
                await asyncio.sleep(self._t.retry.backoff(attempt))

    @staticmethod
    def from_file(path: str | Path) -> list[dict[str, Any]]:
        """Items from a CSV or JSONL file (see the README for the columns)."""
        return _shared.read_items(Path(path))

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel: queued items at once, running ones finish."""
        answer: dict[str, Any] = await self._t.json(Request("POST", f"/v1/batches/{batch_id}/cancel"))
        return answer

    async def retry(
        self, batch_id: str, include_permanent: bool = False, error_codes: list[str] | None = None
    ) -> int:
        """See `Lote.batches.retry`."""
        payload = _shared.body(include_permanent=include_permanent or None, error_codes=error_codes)
        call = Request("POST", f"/v1/batches/{batch_id}/retry", payload, safe=False)
        answer = await self._t.json(call)
        return int(answer["retried"]) + int(answer.get("retrying", 0))

    async def download(
        self,
        batch_id: str,
        out_dir: str | Path,
        concurrency: int = 16,
        on_file: Callable[[_download.FileResult], object] | None = None,
    ) -> _download.Report:
        """See `Lote.batches.download`."""
        items = self.iter_items(batch_id)  # all of them: each reserves its file name (FileNames)
        return await _download.batch_async(self._t, items, Path(out_dir), concurrency, on_file)

    async def list(self, status: str | None = None) -> AsyncIterator[BatchSummary]:
        """The tenant's batches, newest first."""
        token = None
        while True:
            params = _shared.body(status=status, page_token=token)
            page = await self._t.json(Request("GET", "/v1/batches", params=params))
            for found in page["batches"]:
                yield BatchSummary.model_validate(found)
            token = page.get("next_page_token")
            if not token:
                return


class AsyncPresets:
    """The presets."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def list(self) -> list[Preset]:
        """Every preset."""
        return [
            Preset.model_validate(p) for p in (await self._t.json(Request("GET", "/v1/presets")))["presets"]
        ]


class AsyncAccount:
    """The account: usage, and the spend controls (API key only)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def usage(
        self, *, start: Any = None, end: Any = None, granularity: str = "day", group_by: str | None = None
    ) -> Usage:
        """What finished in [start, end), by period and group (see `Lote.account.usage`)."""
        params = _shared.usage_params(start, end, granularity, group_by, "json")
        return Usage.model_validate(await self._t.json(Request("GET", "/v1/account/usage", params=params)))

    async def usage_csv(
        self, *, start: Any = None, end: Any = None, granularity: str = "day", group_by: str | None = None
    ) -> str:
        """The same report as CSV text."""
        params = _shared.usage_params(start, end, granularity, group_by, "csv")
        return (await self._t.send(Request("GET", "/v1/account/usage", params=params))).text

    async def spend_controls(self) -> SpendControls:
        """The caps, the low-balance threshold and what was charged today and this month."""
        return SpendControls.model_validate(await self._t.json(Request("GET", "/v1/account/spend-controls")))

    async def set_spend_controls(
        self,
        *,
        daily_cap: int | None = _shared.UNSET,
        monthly_cap: int | None = _shared.UNSET,
        low_balance_threshold: int | None = _shared.UNSET,
        webhook_url: str | None = _shared.UNSET,
    ) -> SpendControls:
        """Change the controls passed (None removes one); the others stay."""
        body = _shared.spend_controls_body(
            daily_cap=daily_cap,
            monthly_cap=monthly_cap,
            low_balance_threshold=low_balance_threshold,
            webhook_url=webhook_url,
        )
        return SpendControls.model_validate(
            await self._t.json(Request("PATCH", "/v1/account/spend-controls", body))
        )


class AsyncLote:
    """The lote API, async: `async with AsyncLote() as lote: await lote.generations.create(...)`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        config = Config.resolve(base_url, api_key, token, timeout)
        self._transport = AsyncTransport(config, retry or RetryPolicy(), http)
        self.uploads = AsyncUploads(self._transport)
        self.generations = AsyncGenerations(self._transport, self.uploads)
        self.batches = AsyncBatches(self._transport, self.uploads)
        self.presets = AsyncPresets(self._transport)
        self.account = AsyncAccount(self._transport)
        self.webhooks = webhooks

    async def close(self) -> None:
        """Close the connections."""
        await self._transport.close()

    async def __aenter__(self) -> AsyncLote:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()
