"""The synchronous client: `Lote(api_key=..., base_url=...)` with `generations`, `batches`, `presets`,
`uploads` and `webhooks`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import httpx

from lote_client import _download, _shared, webhooks
from lote_client._http import Config, Request, RetryPolicy, Transport, decode, raise_for
from lote_client.errors import ConnectionFailed, LoteError, WaitTimeout
from lote_client.models import (
    Accepted,
    Batch,
    BatchAccepted,
    BatchSummary,
    Generation,
    Item,
    Preset,
    Upload,
)

Image = str | Path


class Uploads:
    """Local files sent to the API's storage through signed PUT URLs (`POST /v1/uploads`)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def put(self, data: bytes, content_type: str, filename: str | None = None) -> str:
        """Upload bytes; the `gs://` URI to use in requests."""
        answer = Upload.model_validate(
            self._t.json(Request.create("/v1/uploads", _shared.body(content_type=content_type,
                                                                    max_bytes=len(data), filename=filename)))
        )  # fmt: skip
        for attempt in range(1, self._t.retry.attempts + 1):  # the signed URL may be retried as is
            try:
                stored = self._t.http.put(answer.upload_url, content=data, headers=answer.headers)
            except httpx.TransportError as exc:
                if attempt == self._t.retry.attempts:
                    raise ConnectionFailed(0, "upload_failed", str(exc)) from exc
                time.sleep(self._t.retry.backoff(attempt))
                continue
            if stored.status_code < 300:
                return answer.gs_uri
            if stored.status_code < 500 or attempt == self._t.retry.attempts:
                raise LoteError(stored.status_code, "upload_failed", stored.text[:500])
            time.sleep(self._t.retry.delay(attempt, stored.headers) or self._t.retry.backoff(attempt))
        raise AssertionError("unreachable")

    def image(self, path: Image) -> str:
        """Upload a local image file; its `gs://` URI."""
        file = Path(path)
        return self.put(file.read_bytes(), _shared.content_type(file), _safe_filename(file))


def _safe_filename(path: Path) -> str | None:
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name)[:200]
    return name or None


class Generations:
    """Single images: create (optionally waiting for the image), get, wait, cancel, download."""

    def __init__(self, transport: Transport, uploads: Uploads) -> None:
        self._t, self._uploads = transport, uploads

    @overload
    def create(
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
    def create(
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

    def create(
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
        """Submit one image (local files in `images` are uploaded first). With `wait`, return once it
        is final: up to 60 s inside the POST (`Prefer: wait`), then by waiting on it (`wait` seconds in
        all when a number, else until it ends)."""
        refs = [self._uploads.image(i) if _shared.is_local(i) else str(i) for i in images]
        payload = _shared.body(prompt=prompt, preset=preset, params=params, images=refs or None, **fields)
        hold = _shared.WAIT_MAX_S if wait is True else min(_shared.WAIT_MAX_S, int(wait or 0))
        call = Request.create(
            "/v1/generations", payload, idempotency_key, {"Prefer": f"wait={hold}"} if hold else None
        )
        call.timeout_s = self._t.config.timeout_s + hold
        started = time.monotonic()
        answer = self._t.send(call)
        if answer.status_code == 200:  # finished within the held request
            return Generation.model_validate(decode(answer))
        accepted = Accepted.model_validate(decode(answer))
        if not wait:
            return accepted
        left = None if wait is True else max(0.0, float(wait) - (time.monotonic() - started))
        return self.wait(accepted.id, timeout=left)

    def get(self, generation_id: str) -> Generation:
        """The generation as it is now."""
        return Generation.model_validate(self._t.json(Request("GET", f"/v1/generations/{generation_id}")))

    def wait(self, generation_id: str, timeout: float | None = None) -> Generation:
        """Block until the generation is final (held requests: the server answers when it changes);
        WaitTimeout after `timeout` seconds (the generation goes on)."""
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
            response = self._t.send(call)
            if response.status_code == 304:
                continue
            generation = Generation.model_validate(decode(response))
            if generation.done:
                return generation
            etag = response.headers.get("ETag")

    def cancel(self, generation_id: str) -> Generation:
        """Cancel: a queued image at once, a running one when its attempt ends."""
        return Generation.model_validate(
            self._t.json(Request("POST", f"/v1/generations/{generation_id}/cancel"))
        )

    def download(self, generation: str | Generation, path: str | Path) -> Path:
        """Save a succeeded generation's image to `path` (a directory: `{id}.{ext}` in it), checked
        against its SHA-256; written whole or not at all."""
        found = self.get(generation) if isinstance(generation, str) else generation
        if found.status != "succeeded" or found.output is None:
            raise LoteError(0, "not_succeeded", f"{found.id} is {found.status}: there is no image")
        target = Path(path)
        if target.is_dir():
            target = target / f"{found.id}{_shared.EXTENSIONS.get(found.output.mime_type, '.bin')}"
        _download.fetch(self._t, f"/v1/generations/{found.id}/output", target, found.output.sha256)
        return target


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
        """Every item of results.jsonl, streamed; a broken stream resumes where it stopped."""
        done = 0
        for attempt in range(1, self._t.retry.attempts + 1):
            try:
                yield from self._stream(batch_id, skip=done)
                return
            except _Broken as broken:
                done = broken.lines
                if attempt == self._t.retry.attempts:
                    raise ConnectionFailed(0, "connection_failed", str(broken)) from None
                time.sleep(self._t.retry.backoff(attempt))

    def _stream(self, batch_id: str, skip: int) -> Iterator[dict[str, Any]]:
        lines = 0
        url = f"{self._t.config.base_url}/v1/batches/{batch_id}/results.jsonl"
        try:
            with self._t.http.stream("GET", url, headers=self._t.config.headers()) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    lines += 1
                    if lines > skip:
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise _Broken(max(lines, skip), str(exc)) from exc

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel: queued items at once, running ones finish. {status, canceled, running}."""
        answer: dict[str, Any] = self._t.json(Request("POST", f"/v1/batches/{batch_id}/cancel"))
        return answer

    def retry(
        self, batch_id: str, include_permanent: bool = False, error_codes: list[str] | None = None
    ) -> int:
        """Queue failed items again (paid again, refunded if they fail again); how many."""
        payload = _shared.body(include_permanent=include_permanent or None, error_codes=error_codes)
        return int(self._t.json(Request.create(f"/v1/batches/{batch_id}/retry", payload))["retried"])

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
        """Every succeeded item's image into `out_dir`, named by its reference; files already there with
        the right SHA-256 are skipped (so a rerun resumes); failures are reported, not raised."""
        items = self.iter_items(batch_id, status="succeeded")
        return _download.batch(self._t, items, Path(out_dir), concurrency, on_file)


class _Broken(Exception):
    def __init__(self, lines: int, reason: str) -> None:
        super().__init__(reason)
        self.lines = lines


class Presets:
    """The presets: parameters, steps, rubric and price."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Preset]:
        """Every preset."""
        return [Preset.model_validate(p) for p in self._t.json(Request("GET", "/v1/presets"))["presets"]]


class Lote:
    """The lote API. `Lote()` reads LOTE_API_URL and LOTE_API_KEY; or pass `base_url` and `api_key`
    (a partner's secret key) or `token` (a client token minted for one end user)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._transport = Transport(
            Config.resolve(base_url, api_key, token, timeout), retry or RetryPolicy(), http
        )
        self.uploads = Uploads(self._transport)
        self.generations = Generations(self._transport, self.uploads)
        self.batches = Batches(self._transport, self.uploads)
        self.presets = Presets(self._transport)
        self.webhooks = webhooks

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    def __enter__(self) -> Lote:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
