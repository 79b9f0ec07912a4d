"""Fetching input images: https only, public addresses only (SSRF), redirects re-checked, bounded."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from lote import images
from lote.netguard import IP, is_public, pinned_pool

if TYPE_CHECKING:
    from lote.services import Services

_REDIRECTS = {301, 302, 303, 307, 308}


class InputError(Exception):
    """An input that cannot be used; `retryable` says whether a later attempt may succeed."""

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class FetchPolicy:
    """What the fetcher may reach and how much it may read."""

    schemes: frozenset[str] = frozenset({"https"})
    allow_ip: Callable[[IP], bool] = field(default=is_public)
    timeout_s: float = 10.0
    max_bytes: int = images.MAX_INPUT_BYTES
    max_redirects: int = 3


def _resolve(host: str, port: int, policy: FetchPolicy) -> str:
    """One address of `host`, after checking that every address it resolves to is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InputError("input_fetch_failed", f"cannot resolve {host}: {exc}", retryable=True) from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    blocked = [str(a) for a in addresses if not policy.allow_ip(a)]
    if blocked or not addresses:
        raise InputError("input_forbidden", f"{host} resolves to a non-public address ({', '.join(blocked)})")
    return str(addresses[0])


def fetch(url: str, policy: FetchPolicy, after: Callable[[int], None] | None = None) -> bytes:
    """GET an image URL, pinned to the checked address so DNS cannot be rebound in between.
    `after(n)` is told how many bytes the body was (not what its headers claimed)."""
    import urllib3

    deadline = time.monotonic() + policy.timeout_s
    for _ in range(policy.max_redirects + 1):
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:  # a port out of range, a bracketed host that is no address
            raise InputError("input_invalid_uri", f"{url[:200]} is not a valid URL: {exc}") from None
        if parts.scheme not in policy.schemes or not parts.hostname:
            raise InputError("input_forbidden", f"only {'/'.join(sorted(policy.schemes))} URLs are fetched")
        ip = _resolve(parts.hostname, port, policy)
        pool = pinned_pool(url, ip, max(0.1, deadline - time.monotonic()))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "lote-fetch/1", "Accept": "image/*"}
        try:
            response = pool.urlopen(
                "GET", path, headers=headers, redirect=False, retries=False, preload_content=False
            )
            try:
                if response.status in _REDIRECTS and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    retryable = response.status == 429 or response.status >= 500
                    code = "input_not_found" if response.status in (404, 410) else "input_fetch_failed"
                    raise InputError(code, f"GET {url} answered {response.status}", retryable=retryable)
                data = response.read(policy.max_bytes + 1)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise InputError("input_fetch_failed", f"GET {url} failed: {type(exc).__name__}", True) from None
        finally:
            pool.close()
        if len(data) > policy.max_bytes:
            raise InputError("input_too_large", f"{url} is larger than {policy.max_bytes} bytes")
        if after is not None:
            after(len(data))
        return data
    raise InputError("input_fetch_failed", f"more than {policy.max_redirects} redirects from {url}")


def parse_gs(uri: str) -> tuple[str, str]:
    """`gs://bucket/object` as (bucket, object)."""
    rest = uri.removeprefix("gs://")
    bucket, _, name = rest.partition("/")
    if not bucket or not name:
        raise InputError("input_invalid_uri", f"{uri} is not gs://bucket/object")
    return bucket, name


def inspect_input(data: bytes, where: str) -> images.ImageInfo:
    """Prove an input is an image; a permanent input error when it is not."""
    try:
        return images.inspect(data)
    except images.InvalidImage as exc:
        raise InputError(exc.code, f"{where}: {exc}") from None


Loaded = tuple[bytes, str]  # an input's bytes and MIME type


def load(
    services: Services, job: Mapping[str, Any], after: Callable[[int], None] | None = None
) -> list[Loaded]:
    """Every input of a job read and proven to be an image (gs:// from Cloud Storage, else fetched);
    `after(n)` is told each input's size as read (the worker gives back memory it reserved for more)."""
    from lote.clients.storage import ObjectTooLarge

    loaded = []
    for uri in job.get("inputs") or []:
        if uri.startswith("gs://"):
            bucket, name = parse_gs(uri)
            try:
                data = services.storage.read(bucket, name, images.MAX_INPUT_BYTES, after)
            except ObjectTooLarge as exc:
                raise InputError("input_too_large", str(exc)) from None
            if data is None:
                raise InputError("input_not_found", f"{uri} does not exist")
        else:
            data = fetch(uri, FetchPolicy(), after)
        info = inspect_input(data, uri)
        loaded.append((data, info.mime_type))
    return loaded
