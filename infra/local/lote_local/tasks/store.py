"""The emulator's in-memory queues and tasks, and their conversion to Cloud Tasks messages."""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from google.cloud import tasks_v2, tasks_v2beta3
from google.rpc import status_pb2

from lote_local.tasks import rules
from lote_local.tasks.rules import RetryPolicy, invalid

RUNNING = tasks_v2.Queue.State.RUNNING
PAUSED = tasks_v2.Queue.State.PAUSED

# Headers Cloud Tasks sets itself or refuses to forward (target.proto, HttpRequest.headers).
_RESERVED_HEADERS = (
    "host",
    "content-length",
    "user-agent",
    "x-google-",
    "x-appengine-",
    "x-cloudtasks-",
)


@dataclass(frozen=True)
class QueueConfig:
    """Rate limits and retry policy of one queue."""

    rate: float = rules.DEFAULT_RATE
    burst: int = 100
    max_concurrent: int = rules.DEFAULT_CONCURRENT
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class Attempt:
    """One dispatch of a task and what came back."""

    schedule_time: float
    dispatch_time: float
    response_time: float | None = None
    http_status: int | None = None
    error: str | None = None


@dataclass
class TaskRecord:
    """A task waiting, in flight, or being retried."""

    name: str
    queue: str
    url: str
    method: tasks_v2.HttpMethod
    headers: dict[str, str]
    body: bytes
    oidc_email: str | None
    oidc_audience: str | None
    schedule_time: float
    create_time: float
    dispatch_deadline: float
    seq: int
    dispatch_count: int = 0
    response_count: int = 0
    execution_count: int = 0
    first_attempt: Attempt | None = None
    last_attempt: Attempt | None = None
    in_flight: int = 0
    version: int = 0

    @property
    def short_name(self) -> str:
        """The task id, as in X-CloudTasks-TaskName."""
        return self.name.rsplit("/", 1)[1]


@dataclass
class QueueRecord:
    """A queue, its tasks and its live dispatch state (token bucket, throttling)."""

    name: str
    config: QueueConfig  # what dispatch obeys now
    state: int = RUNNING
    # UpdateQueues not in effect yet, oldest first: (when it takes effect, the config it declared).
    # The API answers with the last declared config at once; dispatch follows each when it is due.
    pending: list[tuple[float, QueueConfig]] = field(default_factory=list)
    purge_time: float | None = None
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    used_names: set[str] = field(default_factory=set)
    heap: list[tuple[float, int, int, str]] = field(default_factory=list)
    tokens: float = 0.0
    last_refill: float = 0.0
    factor: float = 1.0
    answers: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, was 429/503)
    hold_until: float = 0.0
    in_flight: int = 0
    executed: deque[float] = field(default_factory=deque)

    @property
    def short_name(self) -> str:
        """The queue id, as in X-CloudTasks-QueueName."""
        return self.name.rsplit("/", 1)[1]


def _seconds(value: dt.timedelta) -> float:
    return value.total_seconds()


def _timestamp(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


_RATE_FIELDS = {"max_dispatches_per_second", "max_concurrent_dispatches", "max_burst_size"}
_RETRY_FIELDS = {
    "max_attempts",
    "max_retry_duration",
    "min_backoff",
    "max_backoff",
    "max_doublings",
}


def config_from_queue(queue: tasks_v2.Queue, base: QueueConfig, paths: set[str] | None) -> QueueConfig:
    """Apply a Queue message (all fields, or those in `paths`) on top of `base`, validated."""

    def wanted(group: str, name: str) -> bool:
        if paths is None:
            return group in queue and (name in getattr(queue, group) or group == "retry_config")
        return group in paths or f"{group}.{name}" in paths

    if paths is not None:
        for path in paths:
            group, _, leaf = path.partition(".")
            known = _RATE_FIELDS if group == "rate_limits" else _RETRY_FIELDS
            if group == "stackdriver_logging_config":
                continue
            if group not in ("rate_limits", "retry_config") or (leaf and leaf not in known):
                raise invalid(f"update_mask path {path!r} cannot be updated")
    limits, retry = queue.rate_limits, queue.retry_config
    rate, burst, concurrent = base.rate, base.burst, base.max_concurrent
    if wanted("rate_limits", "max_dispatches_per_second"):
        rate = limits.max_dispatches_per_second or rules.DEFAULT_RATE
    if wanted("rate_limits", "max_concurrent_dispatches"):
        concurrent = limits.max_concurrent_dispatches or rules.DEFAULT_CONCURRENT
    if wanted("rate_limits", "max_burst_size") and limits.max_burst_size:
        burst = limits.max_burst_size
    elif wanted("rate_limits", "max_dispatches_per_second"):
        # Cloud Tasks picks the burst from the rate when the queue is not made from queue.yaml.
        burst = max(1, min(100, int(rate)))
    policy = base.retry
    if wanted("retry_config", "max_attempts"):
        policy = replace(policy, max_attempts=retry.max_attempts or rules.DEFAULT_MAX_ATTEMPTS)
    # The API truncates retry durations to whole seconds (queue.proto); sub-second backoffs
    # (the 0.1 s default) are kept so that short test queues stay short.
    durations = {
        name: _seconds(getattr(retry, name)) if name in retry else default
        for name, default in (
            ("max_retry_duration", 0.0),
            ("min_backoff", rules.DEFAULT_MIN_BACKOFF),
            ("max_backoff", rules.DEFAULT_MAX_BACKOFF),
        )
        if wanted("retry_config", name)
    }
    policy = replace(
        policy,
        max_retry_duration=durations.get("max_retry_duration", policy.max_retry_duration),
        min_backoff=durations.get("min_backoff", policy.min_backoff),
        max_backoff=durations.get("max_backoff", policy.max_backoff),
    )
    if wanted("retry_config", "max_doublings"):
        # Like Cloud Tasks, 0 on create means "default"; an explicit update_mask path sets 0.
        explicit = paths is not None and "retry_config.max_doublings" in paths
        doublings = retry.max_doublings if explicit else retry.max_doublings or rules.DEFAULT_MAX_DOUBLINGS
        policy = replace(policy, max_doublings=doublings)
    if not 0 < rate <= 500:
        raise invalid("rate_limits.max_dispatches_per_second must be in (0, 500]")
    if not 1 <= concurrent <= 5000:
        raise invalid("rate_limits.max_concurrent_dispatches must be in [1, 5000]")
    if not 1 <= burst <= 500:
        raise invalid("rate_limits.max_burst_size must be in [1, 500]")
    if policy.max_attempts < -1:
        raise invalid("retry_config.max_attempts must be >= -1")
    if min(policy.min_backoff, policy.max_backoff, policy.max_retry_duration) < 0:
        raise invalid("retry_config durations must not be negative")
    if policy.min_backoff > policy.max_backoff:
        raise invalid("retry_config.min_backoff must not exceed max_backoff")
    if policy.max_doublings < 0:
        raise invalid("retry_config.max_doublings must be >= 0")
    return QueueConfig(rate=rate, burst=burst, max_concurrent=concurrent, retry=policy)


def queue_message(record: QueueRecord, now: float) -> tasks_v2.Queue:
    """The v2 Queue message for a record: its configuration as last declared."""
    cfg = record.pending[-1][1] if record.pending else record.config
    queue = tasks_v2.Queue(
        name=record.name,
        rate_limits=tasks_v2.RateLimits(
            max_dispatches_per_second=cfg.rate,
            max_burst_size=cfg.burst,
            max_concurrent_dispatches=cfg.max_concurrent,
        ),
        retry_config=tasks_v2.RetryConfig(
            max_attempts=cfg.retry.max_attempts,
            max_retry_duration=dt.timedelta(seconds=cfg.retry.max_retry_duration),
            min_backoff=dt.timedelta(seconds=cfg.retry.min_backoff),
            max_backoff=dt.timedelta(seconds=cfg.retry.max_backoff),
            max_doublings=cfg.retry.max_doublings,
        ),
        state=record.state,
    )
    if record.purge_time is not None:
        queue.purge_time = _timestamp(record.purge_time)
    return queue


def queue_message_v2beta3(record: QueueRecord, now: float, stats: bool) -> tasks_v2beta3.Queue:
    """The v2beta3 Queue message, with live QueueStats when asked for."""
    v2 = queue_message(record, now)
    queue = tasks_v2beta3.Queue(
        name=v2.name,
        rate_limits=tasks_v2beta3.RateLimits(
            max_dispatches_per_second=v2.rate_limits.max_dispatches_per_second,
            max_burst_size=v2.rate_limits.max_burst_size,
            max_concurrent_dispatches=v2.rate_limits.max_concurrent_dispatches,
        ),
        retry_config=tasks_v2beta3.RetryConfig.deserialize(tasks_v2.RetryConfig.serialize(v2.retry_config)),
        state=int(record.state),
        type_=tasks_v2beta3.Queue.Type.PUSH,
    )
    if stats:
        waiting = [t.schedule_time for t in record.tasks.values() if t.in_flight == 0]
        while record.executed and record.executed[0] < now - 60:
            record.executed.popleft()
        queue.stats = tasks_v2beta3.QueueStats(
            tasks_count=len(record.tasks),
            executed_last_minute_count=len(record.executed),
            concurrent_dispatches_count=record.in_flight,
            effective_execution_rate=record.config.rate * record.factor,
        )
        if waiting:
            queue.stats.oldest_estimated_arrival_time = _timestamp(min(waiting))
    return queue


def _attempt_message(attempt: Attempt | None) -> tasks_v2.Attempt | None:
    if attempt is None:
        return None
    message = tasks_v2.Attempt(
        schedule_time=_timestamp(attempt.schedule_time),
        dispatch_time=_timestamp(attempt.dispatch_time),
    )
    if attempt.response_time is not None:
        message.response_time = _timestamp(attempt.response_time)
        code = rules.grpc_code_for_http(attempt.http_status)
        if attempt.error:
            code = rules.grpc.StatusCode.DEADLINE_EXCEEDED if "deadline" in attempt.error else code
        text = attempt.error or f"HTTP {attempt.http_status}"
        message.response_status = status_pb2.Status(code=code.value[0], message=text)
    return message


def task_message(task: TaskRecord, view: tasks_v2.Task.View) -> tasks_v2.Task:
    """The Task message; the BASIC view leaves out the body, as Cloud Tasks does."""
    full = view == tasks_v2.Task.View.FULL
    request = tasks_v2.HttpRequest(
        url=task.url, http_method=task.method, headers=task.headers, body=task.body if full else b""
    )
    if task.oidc_email:
        request.oidc_token = tasks_v2.OidcToken(
            service_account_email=task.oidc_email, audience=task.oidc_audience or ""
        )
    message: dict[str, Any] = {
        "name": task.name,
        "http_request": request,
        "schedule_time": _timestamp(task.schedule_time),
        "create_time": _timestamp(task.create_time),
        "dispatch_deadline": dt.timedelta(seconds=task.dispatch_deadline),
        "dispatch_count": task.dispatch_count,
        "response_count": task.response_count,
        "view": tasks_v2.Task.View.FULL if full else tasks_v2.Task.View.BASIC,
    }
    for key in ("first_attempt", "last_attempt"):
        attempt = _attempt_message(getattr(task, key))
        if attempt is not None:
            message[key] = attempt
    return tasks_v2.Task(**message)


def forwarded_headers(headers: dict[str, str]) -> dict[str, str]:
    """The task's headers less those Cloud Tasks overrides or drops."""
    return {k: v for k, v in headers.items() if not k.lower().startswith(_RESERVED_HEADERS)}
