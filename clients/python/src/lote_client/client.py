"""The synchronous client: `Lote(api_key=..., base_url=...)` with `generations`, `batches`, `presets`,
`uploads` and `webhooks`."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import httpx

from lote_client import _download, _shared, webhooks
from lote_client._http import Config, Request, RetryPolicy, Transport, decode
from lote_client.batches import Batches
from lote_client.errors import ConnectionFailed, LoteError, WaitTimeout
from lote_client.models import (
    Accepted,
    Generation,
    Preset,
    SpendControls,
    Upload,
    Usage,
)

Image = str | Path


class Uploads:
    """Local files sent to the API's storage through signed PUT URLs (`POST /v1/uploads`)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def put(self, data: bytes, content_type: str, filename: str | None = None) -> str:
        """Upload bytes; the `gs://` URI to use in requests."""
        # Named by its content, so a create resubmitted with its Idempotency-Key uploads to the same URI.
        asked = _shared.body(content_type=content_type, max_bytes=len(data), filename=filename,
                             sha256=hashlib.sha256(data).hexdigest())  # fmt: skip
        answer = Upload.model_validate(self._t.json(Request.create("/v1/uploads", asked)))
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
        return self.put(file.read_bytes(), _shared.content_type(file), _shared.upload_name(file))


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


class Presets:
    """The presets: parameters, steps, rubric and price."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Preset]:
        """Every preset."""
        return [Preset.model_validate(p) for p in self._t.json(Request("GET", "/v1/presets"))["presets"]]


class Account:
    """The account: usage, and the spend controls (API key only)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def usage(
        self, *, start: Any = None, end: Any = None, granularity: str = "day", group_by: str | None = None
    ) -> Usage:
        """What finished in [start, end): images, credits, failures and latency by period and group
        (`start`/`end`: datetime, date or RFC 3339 string; default the last 30 days, by hour 1 day)."""
        params = _shared.usage_params(start, end, granularity, group_by, "json")
        return Usage.model_validate(self._t.json(Request("GET", "/v1/account/usage", params=params)))

    def usage_csv(
        self, *, start: Any = None, end: Any = None, granularity: str = "day", group_by: str | None = None
    ) -> str:
        """The same report as CSV text, one row per period and group, as the server wrote it."""
        params = _shared.usage_params(start, end, granularity, group_by, "csv")
        return self._t.send(Request("GET", "/v1/account/usage", params=params)).text

    def spend_controls(self) -> SpendControls:
        """The caps, the low-balance threshold and what was charged today and this month."""
        return SpendControls.model_validate(self._t.json(Request("GET", "/v1/account/spend-controls")))

    def set_spend_controls(
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
        answer = self._t.json(Request("PATCH", "/v1/account/spend-controls", body))
        return SpendControls.model_validate(answer)


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
        self.account = Account(self._transport)
        self.webhooks = webhooks

    def close(self) -> None:
        """Close the connections."""
        self._transport.close()

    def __enter__(self) -> Lote:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
