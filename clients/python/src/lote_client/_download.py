"""Downloading images: one file (the API's redirect to a fresh signed URL, then the URL without our
credentials), or a whole batch in parallel, resumable, reporting failures instead of stopping."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from lote_client._http import AsyncTransport, Request, Transport
from lote_client._shared import FileNames, sha256_of
from lote_client.errors import ConnectionFailed, LoteError
from lote_client.models import Item


@dataclass(frozen=True)
class FileResult:
    """What happened to one item's file."""

    reference: str
    path: Path
    status: Literal["downloaded", "skipped", "failed"]
    error: str | None = None


@dataclass
class Report:
    """A batch download: counts, and every failure with its reason."""

    downloaded: int = 0
    skipped: int = 0
    failed: list[FileResult] = field(default_factory=list)

    def add(self, result: FileResult) -> None:
        """Count one file."""
        if result.status == "failed":
            self.failed.append(result)
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.downloaded += 1


def _api_path(url: str, base_url: str) -> str:
    """An item's output link as a path under the client's base URL: the link is the API's own URL,
    which may not be the one the client reaches it by (a proxy, a path prefix)."""
    if url.startswith(base_url):
        return url[len(base_url) :]
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    prefix = urlsplit(base_url).path.rstrip("/")
    path = parts.path[len(prefix) :] if prefix and parts.path.startswith(prefix + "/") else parts.path
    return path + (f"?{parts.query}" if parts.query else "")


def _location(response: httpx.Response) -> str:
    location = response.headers.get("Location")
    if response.status_code not in (301, 302, 303, 307) or not location:
        raise LoteError(response.status_code, "no_redirect", "the API did not redirect to the image")
    return location


def _write(chunks: Iterable[bytes], target: Path, sha256: str | None) -> None:
    """Write to a temporary file and move it into place once its checksum is right."""
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as handle:
            for chunk in chunks:
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:  # a broken stream or Ctrl-C: no half file left behind
        partial.unlink(missing_ok=True)
        raise
    if sha256 and digest.hexdigest() != sha256:
        partial.unlink(missing_ok=True)
        raise LoteError(0, "checksum_mismatch", f"{target.name}: the bytes received are not the image's")
    os.replace(partial, target)


def fetch(transport: Transport, api_path: str, target: Path, sha256: str | None) -> None:
    """Save one image; each try asks the API for a fresh signed URL."""
    for attempt in range(1, transport.retry.attempts + 1):
        path = _api_path(api_path, transport.config.base_url)
        location = _location(transport.send(Request("GET", path)))
        try:
            with transport.http.stream("GET", location) as response:
                if response.status_code == 200:
                    _write(response.iter_bytes(), target, sha256)
                    return
                failure = LoteError(
                    response.status_code, "download_failed", f"storage answered {response.status_code}"
                )
        except httpx.TransportError as exc:
            failure = ConnectionFailed(0, "download_failed", f"{type(exc).__name__}: {exc}")
        if attempt == transport.retry.attempts:
            raise failure
        time.sleep(transport.retry.backoff(attempt))


def _known(item: Item, path: Path) -> FileResult | None:
    """The item's result if its file is already there with the right SHA-256 (nothing to fetch)."""
    assert item.output is not None  # only succeeded items are downloaded
    if path.is_file() and sha256_of(path) == item.output.sha256:
        return FileResult(item.reference, path, "skipped")
    return None


def _named(items: Iterable[Item], out_dir: Path) -> Iterable[tuple[Item, Path]]:
    """The items that have an image, each with its file (named in item order: see FileNames)."""
    names = FileNames()
    for item in items:
        path = out_dir / names.name(item.reference, item.output.mime_type if item.output else None)
        if item.output is not None:
            yield item, path


def batch(
    transport: Transport,
    items: Iterable[Item],
    out_dir: Path,
    concurrency: int,
    on_file: Callable[[FileResult], object] | None,
) -> Report:
    """Download every item with an output, `concurrency` at a time (never more than a few pages of
    items held in memory). `items` are all the batch's items, in order, whatever their status."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()

    def one(item: Item, path: Path) -> FileResult:
        assert item.output is not None
        try:
            known = _known(item, path)
            if known is not None:
                return known
            fetch(transport, item.output.url, path, item.output.sha256)
        except (LoteError, OSError) as exc:
            return FileResult(item.reference, path, "failed", str(exc))
        return FileResult(item.reference, path, "downloaded")

    def done(futures: set[Future[FileResult]]) -> None:
        for future in futures:
            result = future.result()
            report.add(result)
            if on_file is not None:
                on_file(result)

    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        running: set[Future[FileResult]] = set()
        for item, path in _named(items, out_dir):
            running.add(pool.submit(one, item, path))
            if len(running) >= 4 * concurrency:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                done(finished)
        finished, _ = wait(running)
        done(finished)
    except BaseException:  # Ctrl-C: drop what has not started instead of downloading it first
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return report


async def fetch_async(transport: AsyncTransport, api_path: str, target: Path, sha256: str | None) -> None:
    """fetch() for the async client."""
    for attempt in range(1, transport.retry.attempts + 1):
        path = _api_path(api_path, transport.config.base_url)
        location = _location(await transport.send(Request("GET", path)))
        try:
            async with transport.http.stream("GET", location) as response:
                if response.status_code == 200:
                    _write([chunk async for chunk in response.aiter_bytes()], target, sha256)
                    return
                failure = LoteError(
                    response.status_code, "download_failed", f"storage answered {response.status_code}"
                )
        except httpx.TransportError as exc:
            failure = ConnectionFailed(0, "download_failed", f"{type(exc).__name__}: {exc}")
        if attempt == transport.retry.attempts:
            raise failure
        await asyncio.sleep(transport.retry.backoff(attempt))


async def batch_async(
    transport: AsyncTransport,
    items: AsyncIterator[Item],
    out_dir: Path,
    concurrency: int,
    on_file: Callable[[FileResult], object] | None,
) -> Report:
    """batch() for the async client."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report, gate = Report(), asyncio.Semaphore(concurrency)

    async def one(item: Item, path: Path) -> None:
        async with gate:
            assert item.output is not None
            try:
                result = _known(item, path)
                if result is None:
                    await fetch_async(transport, item.output.url, path, item.output.sha256)
                    result = FileResult(item.reference, path, "downloaded")
            except (LoteError, OSError) as exc:
                result = FileResult(item.reference, path, "failed", str(exc))
            report.add(result)
            if on_file is not None:
                on_file(result)

    tasks: set[asyncio.Task[None]] = set()
    names = FileNames()
    async for item in items:
        path = out_dir / names.name(item.reference, item.output.mime_type if item.output else None)
        if item.output is None:
            continue
        tasks.add(asyncio.create_task(one(item, path)))
        if len(tasks) >= 4 * concurrency:
            finished, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                task.result()  # an unexpected error is raised, not lost
    if tasks:
        finished, _ = await asyncio.wait(tasks)
        for task in finished:
            task.result()
    return report
