"""The HTTP layer both clients share: configuration, the retry rule (pure), and a sync and an async
transport that apply it. A retried create reuses its Idempotency-Key, so it never creates twice."""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from lote_client import errors

__version__ = "0.1.0"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
USER_AGENT = f"lote-client-python/{__version__}"


def new_idempotency_key() -> str:
    """A key for one logical call, reused by every retry of that call."""
    return f"lote-py-{uuid.uuid4()}"


@dataclass(frozen=True)
class Config:
    """Where the API is and how to authenticate: arguments first, then LOTE_API_URL / LOTE_API_KEY."""

    base_url: str
    credential: str
    timeout_s: float = 60.0

    @classmethod
    def resolve(
        cls, base_url: str | None, api_key: str | None, token: str | None, timeout_s: float
    ) -> Config:
        """The configuration from arguments and the environment; a LoteError names what is missing."""
        url = base_url or os.environ.get("LOTE_API_URL")
        credential = api_key or token or os.environ.get("LOTE_API_KEY")
        if not url:
            raise errors.LoteError(0, "no_base_url", "pass base_url= or set LOTE_API_URL")
        if not credential:
            raise errors.LoteError(0, "no_credential", "pass api_key= (or token=) or set LOTE_API_KEY")
        return cls(url.rstrip("/"), credential, timeout_s)

    def headers(self) -> dict[str, str]:
        """What every request carries."""
        return {"Authorization": f"Bearer {self.credential}", "User-Agent": USER_AGENT}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: full-jitter exponential backoff capped at `cap_s`, unless the
    server said when (Retry-After, or RateLimit-Reset once RateLimit-Remaining is 0): that wait is
    honoured in full, and a server asking for more than `max_wait_s` is not retried at all."""

    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 30.0
    max_wait_s: float = 120.0

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None) -> float | None:
        """Seconds to wait before try `attempt + 1` (attempt counts from 1); None: do not retry."""
        told = server_delay(headers or {})
        if told is not None:
            return None if told > self.max_wait_s else told + random.uniform(0, 0.1 * max(told, 1.0))  # noqa: S311
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))  # noqa: S311

    def backoff(self, attempt: int) -> float:
        """The wait after a failure the server said nothing about (a lost connection)."""
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))  # noqa: S311


def server_delay(headers: Mapping[str, str]) -> float | None:
    """The wait the server asked for: Retry-After (seconds or an HTTP date), else RateLimit-Reset
    when nothing of the window remains."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):  # neither seconds nor a date: as if not said
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - time.time())
    remaining = headers.get("RateLimit-Remaining") or headers.get("ratelimit-remaining")
    reset = headers.get("RateLimit-Reset") or headers.get("ratelimit-reset")
    if remaining is not None and reset and remaining.strip() == "0" and reset.strip().isdigit():
        return float(reset)
    return None


def retryable(status: int) -> bool:
    """Whether an answer with this status may succeed if sent again."""
    return status in RETRY_STATUSES


def decode(response: httpx.Response) -> Any:
    """The JSON body, or None when there is none."""
    try:
        return response.json()
    except ValueError:
        return None


def raise_for(response: httpx.Response) -> None:
    """The typed exception of an error answer."""
    if response.status_code >= 400:
        raise errors.from_answer(response.status_code, decode(response), response.text)


@dataclass
class Request:
    """One logical call: retried with the same headers (and Idempotency-Key) until it is answered."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    safe: bool = True  # whether sending it twice is harmless (a GET, or a POST with a key)
    timeout_s: float | None = None  # longer than the client's for a request the server holds (Prefer: wait)

    @classmethod
    def create(
        cls, path: str, body: Any, key: str | None = None, headers: dict[str, str] | None = None
    ) -> Request:
        """A POST that creates something, made safe to retry by its Idempotency-Key."""
        return cls(
            "POST", path, body, headers={**(headers or {}), "Idempotency-Key": key or new_idempotency_key()}
        )


class Transport:
    """Sync requests with retries."""

    def __init__(self, config: Config, retry: RetryPolicy, http: httpx.Client | None = None) -> None:
        self.config, self.retry = config, retry
        self.http = http or httpx.Client(timeout=config.timeout_s, follow_redirects=False)

    def send(self, call: Request, expect_error: bool = False) -> httpx.Response:
        """The answer to `call` (raising its typed error, unless `expect_error`)."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = self.http.request(
                    call.method, self.config.base_url + call.path, json=call.json, params=call.params,
                    headers={**self.config.headers(), **(call.headers or {})},
                    timeout=call.timeout_s or self.config.timeout_s,
                )  # fmt: skip
            except httpx.TransportError as exc:
                if not call.safe or attempt == self.retry.attempts:
                    raise errors.ConnectionFailed(
                        0, "connection_failed", f"{type(exc).__name__}: {exc}"
                    ) from exc
                time.sleep(self.retry.backoff(attempt))
                continue
            pause = self.retry.delay(attempt, response.headers) if retryable(response.status_code) else None
            if pause is not None and attempt < self.retry.attempts:
                time.sleep(pause)
                continue
            if not expect_error:
                raise_for(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def json(self, call: Request) -> Any:
        """The answer's JSON body."""
        return decode(self.send(call))

    def close(self) -> None:
        """Close the connections."""
        self.http.close()


class AsyncTransport:
    """Async requests with the same retries."""

    def __init__(self, config: Config, retry: RetryPolicy, http: httpx.AsyncClient | None = None) -> None:
        self.config, self.retry = config, retry
        self.http = http or httpx.AsyncClient(timeout=config.timeout_s, follow_redirects=False)

    async def send(self, call: Request, expect_error: bool = False) -> httpx.Response:
        """The answer to `call` (raising its typed error, unless `expect_error`)."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await self.http.request(
                    call.method, self.config.base_url + call.path, json=call.json, params=call.params,
                    headers={**self.config.headers(), **(call.headers or {})},
                    timeout=call.timeout_s or self.config.timeout_s,
                )  # fmt: skip
            except httpx.TransportError as exc:
                if not call.safe or attempt == self.retry.attempts:
                    raise errors.ConnectionFailed(
                        0, "connection_failed", f"{type(exc).__name__}: {exc}"
                    ) from exc
                await asyncio.sleep(self.retry.backoff(attempt))
                continue
            pause = self.retry.delay(attempt, response.headers) if retryable(response.status_code) else None
            if pause is not None and attempt < self.retry.attempts:
                await asyncio.sleep(pause)
                continue
            if not expect_error:
                raise_for(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def json(self, call: Request) -> Any:
        """The answer's JSON body."""
        return decode(await self.send(call))

    async def close(self) -> None:
        """Close the connections."""
        await self.http.aclose()
