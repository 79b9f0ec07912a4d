"""Cloud Tasks' documented rules as pure functions: names, backoff, when retrying stops."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import grpc

PARENT_RE = re.compile(r"^projects/([A-Za-z0-9.:-]{1,100})/locations/([A-Za-z0-9-]{1,63})$")
QUEUE_RE = re.compile(
    r"^(projects/[A-Za-z0-9.:-]{1,100}/locations/[A-Za-z0-9-]{1,63})/queues/([A-Za-z0-9-]{1,100})$"
)
TASK_RE = re.compile(r"^(projects/[^/]+/locations/[^/]+/queues/[^/]+)/tasks/([A-Za-z0-9_-]{1,500})$")

# API defaults and limits (queue.proto, task.proto, quotas page).
DEFAULT_RATE = 500.0
DEFAULT_CONCURRENT = 1000
DEFAULT_MAX_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 3600.0
DEFAULT_MAX_DOUBLINGS = 16
DEFAULT_DISPATCH_DEADLINE = 600.0
MIN_DISPATCH_DEADLINE = 15.0
MAX_DISPATCH_DEADLINE = 1800.0
MAX_SCHEDULE_AHEAD = 30 * 86400.0
MAX_TASK_BYTES = 1024 * 1024
MAX_URL_CHARS = 2083


class RpcError(Exception):
    """A failure with the gRPC status Cloud Tasks would answer."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> RpcError:
    """INVALID_ARGUMENT with a message."""
    return RpcError(grpc.StatusCode.INVALID_ARGUMENT, message)


def parse_parent(parent: str) -> tuple[str, str]:
    """`projects/P/locations/L` as (P, L), or INVALID_ARGUMENT."""
    match = PARENT_RE.match(parent or "")
    if not match:
        raise invalid(f"Invalid resource field value in the request: parent {parent!r}")
    return match.group(1), match.group(2)


def parse_queue_name(name: str) -> tuple[str, str]:
    """A full queue name as (parent, queue id), or INVALID_ARGUMENT."""
    match = QUEUE_RE.match(name or "")
    if not match:
        raise invalid(f"Invalid resource field value in the request: queue name {name!r}")
    return match.group(1), match.group(2)


def parse_task_name(name: str) -> tuple[str, str]:
    """A full task name as (queue name, task id), or INVALID_ARGUMENT."""
    match = TASK_RE.match(name or "")
    if not match:
        raise invalid(f"Invalid resource field value in the request: task name {name!r}")
    parse_queue_name(match.group(1))
    return match.group(1), match.group(2)


@dataclass(frozen=True)
class RetryPolicy:
    """A queue's retry_config in seconds; -1 attempts and 0 duration mean unlimited."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_retry_duration: float = 0.0
    min_backoff: float = DEFAULT_MIN_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    max_doublings: int = DEFAULT_MAX_DOUBLINGS

    def backoff(self, retry: int) -> float:
        """Delay before retry number `retry` (1 = first retry), per queue.proto's worked example.

        Starts at min_backoff, doubles max_doublings times, then grows linearly by
        2^max_doublings × min_backoff, capped at max_backoff: 10,20,40,80,160,240,300 for
        (10 s, 300 s, 3 doublings).
        """
        retry = max(1, retry)
        doublings = self.max_doublings
        if retry <= doublings + 1:
            interval = self.min_backoff * 2 ** (retry - 1)
        else:
            interval = self.min_backoff * 2**doublings * (1 + retry - 1 - doublings)
        return min(self.max_backoff, interval)

    def exhausted(self, attempts: int, age: float) -> bool:
        """True when no further attempt may be made.

        Cloud Tasks stops only when both limits are reached; an unlimited limit counts as reached
        when the other one is set (App Engine's rule), and both unlimited means retry forever.
        """
        attempts_unlimited = self.max_attempts == -1
        age_unlimited = self.max_retry_duration <= 0
        if attempts_unlimited and age_unlimited:
            return False
        attempts_done = attempts_unlimited or attempts >= self.max_attempts
        age_done = age_unlimited or age >= self.max_retry_duration
        return attempts_done and age_done


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (delta seconds or HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


_HTTP_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code_for_http(status: int | None) -> grpc.StatusCode:
    """The google.rpc code Cloud Tasks records in Attempt.response_status for an HTTP answer."""
    if status is None:
        return grpc.StatusCode.UNAVAILABLE
    if 200 <= status < 300:
        return grpc.StatusCode.OK
    if status in _HTTP_TO_GRPC:
        return _HTTP_TO_GRPC[status]
    if 400 <= status < 500:
        return grpc.StatusCode.FAILED_PRECONDITION
    if 500 <= status < 600:
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.UNKNOWN
