"""One HTTP attempt of a task, with the OIDC token and the dispatch deadline Cloud Tasks applies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import urllib3

from lote_local.tasks.oidc import TokenMinter
from lote_local.tasks.rules import retry_after_seconds

if TYPE_CHECKING:
    from lote_local.tasks.store import TaskRecord


@dataclass(frozen=True)
class Outcome:
    """What one attempt got back: an HTTP status, or an error with no response."""

    status: int | None
    retry_after: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """2xx acknowledges the task."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def slows_queue(self) -> bool:
        """429, 503 and no answer at all (refused, reset, past the deadline) slow the whole queue.

        Cloud Tasks documents 429 and 503, and a higher backoff "if the rate of errors is high"
        (target.proto); that a worker which does not answer counts is our reading of the latter
        (docs/decisions/2026-11-23-reliability.md). Other 5xx (one input host failing) do not.
        """
        return self.status is None or self.status in (429, 503)


class Delivery:
    """Sends attempts, each on a connection of its own."""

    def __init__(self, minter: TokenMinter) -> None:
        self._minter = minter

    def send(self, task: TaskRecord, headers: dict[str, str]) -> Outcome:
        """POST (or the task's method) to the target; never raises."""
        if task.oidc_email:
            audience = task.oidc_audience or task.url
            headers = {
                **headers,
                "Authorization": f"Bearer {self._minter.mint(task.oidc_email, audience)}",
            }
        # A fresh connection per attempt, closed with it. A pool handed a later attempt the
        # connection the target was still closing after "Connection: close" (its answer does not
        # say close), and that attempt failed unsent: RemoteDisconnected on a busy machine.
        headers = {**headers, "Connection": "close"}
        started = time.monotonic()
        deadline = task.dispatch_deadline
        try:
            with urllib3.PoolManager(num_pools=1, maxsize=1) as http:
                response = http.request(
                    task.method.name,
                    task.url,
                    body=task.body or None,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=min(10.0, deadline), read=deadline),
                    # A redirect is followed and is not a separate attempt (target.proto).
                    retries=urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
                    preload_content=True,
                )
        except urllib3.exceptions.ReadTimeoutError:
            return Outcome(status=None, error="deadline exceeded")
        except urllib3.exceptions.HTTPError as exc:
            return Outcome(status=None, error=f"unreachable: {type(exc).__name__}: {exc}"[:300])
        if time.monotonic() - started > deadline:
            return Outcome(status=None, error="deadline exceeded")
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), time.time())
        return Outcome(status=response.status, retry_after=retry_after)
