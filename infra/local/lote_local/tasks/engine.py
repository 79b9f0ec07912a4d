"""The emulator's state machine: the Cloud Tasks RPCs, the dispatch scheduler and retries."""

from __future__ import annotations

import heapq
import logging
import secrets
import threading
import time
from collections.abc import Iterable

import grpc
from google.cloud import tasks_v2

from lote_local.tasks import rules
from lote_local.tasks.delivery import Delivery, Outcome
from lote_local.tasks.oidc import TokenMinter
from lote_local.tasks.rules import RpcError, invalid
from lote_local.tasks.store import (
    RUNNING,
    Attempt,
    QueueConfig,
    QueueRecord,
    TaskRecord,
    config_from_queue,
    forwarded_headers,
)

log = logging.getLogger("lote.tasks")

# Throttling: the queue runs at rate × (1 - share of 429/503 answers in the last 5 s)², at least
# 1/64 of its rate. A full outage slows it to the floor; a few bad items barely do.
THROTTLE_FLOOR = 1 / 64
THROTTLE_WINDOW_S = 5.0


def _not_found(what: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, f"Requested entity was not found: {what}")


class Emulator:
    """Every queue and task of every project, and the thread that dispatches them."""

    def __init__(self, minter: TokenMinter | None = None) -> None:
        self.minter = minter or TokenMinter()
        self._cond = threading.Condition()
        self._queues: dict[str, QueueRecord] = {}
        self._deleted_queues: set[str] = set()
        self._seq = 0
        self._stopped = False
        self._delivery = Delivery(self.minter)
        self._scheduler = threading.Thread(target=self._run, name="tasks-scheduler", daemon=True)
        self._scheduler.start()

    def close(self) -> None:
        """Stop dispatching; tasks in flight finish on their own threads."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._scheduler.join(timeout=5)

    # --- queues -------------------------------------------------------------------------------

    def queue(self, name: str) -> QueueRecord:
        """The queue named, or NOT_FOUND (caller holds the lock)."""
        rules.parse_queue_name(name)
        record = self._queues.get(name)
        if record is None:
            raise _not_found(f"queue {name}")
        return record

    def create_queue(self, parent: str, queue: tasks_v2.Queue) -> QueueRecord:
        """CreateQueue: ALREADY_EXISTS for a live name, FAILED_PRECONDITION for a deleted one."""
        rules.parse_parent(parent)
        queue_parent, _ = rules.parse_queue_name(queue.name)
        if queue_parent != parent:
            raise invalid(f"queue name {queue.name!r} is not under parent {parent!r}")
        if "http_target" in queue or "app_engine_routing_override" in queue:
            raise RpcError(grpc.StatusCode.UNIMPLEMENTED, "queue-level routing is not emulated")
        config = config_from_queue(queue, QueueConfig(), None)
        with self._cond:
            if queue.name in self._queues:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Queue {queue.name} already exists")
            if queue.name in self._deleted_queues:
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "The queue cannot be created because a queue with this name existed too recently.",
                )
            now = time.time()
            record = QueueRecord(name=queue.name, config=config, tokens=config.burst, last_refill=now)
            self._queues[queue.name] = record
            return record

    def update_queue(self, queue: tasks_v2.Queue, paths: list[str]) -> QueueRecord:
        """UpdateQueue: applies the mask (all fields when empty); creates a missing queue."""
        parent, _ = rules.parse_queue_name(queue.name)
        with self._cond:
            record = self._queues.get(queue.name)
            if record is None:
                return self.create_queue(parent, queue)
            record.config = config_from_queue(queue, record.config, set(paths) if paths else None)
            record.tokens = min(record.tokens, record.config.burst)
            self._cond.notify_all()
            return record

    def list_queues(self, parent: str, state_filter: str) -> list[QueueRecord]:
        """Queues under `parent`, optionally only RUNNING or PAUSED ones."""
        rules.parse_parent(parent)
        with self._cond:
            found = [q for name, q in sorted(self._queues.items()) if name.startswith(parent + "/")]
        if state_filter:
            found = [q for q in found if tasks_v2.Queue.State(q.state).name == state_filter]
        return found

    def delete_queue(self, name: str) -> None:
        """DeleteQueue: its tasks go with it and its name cannot be reused."""
        with self._cond:
            self.queue(name)
            del self._queues[name]
            self._deleted_queues.add(name)

    def set_state(self, name: str, state: int) -> QueueRecord:
        """PauseQueue / ResumeQueue."""
        with self._cond:
            record = self.queue(name)
            record.state = state
            self._cond.notify_all()
            return record

    def purge_queue(self, name: str) -> QueueRecord:
        """PurgeQueue: every task created before now is deleted; names stay used."""
        with self._cond:
            record = self.queue(name)
            now = time.time()
            record.purge_time = now
            record.tasks = {k: t for k, t in record.tasks.items() if t.create_time >= now}
            return record

    # --- tasks --------------------------------------------------------------------------------

    def create_task(self, parent: str, task: tasks_v2.Task) -> TaskRecord:
        """CreateTask: validates like Cloud Tasks; a used name is ALREADY_EXISTS."""
        rules.parse_queue_name(parent)
        if "app_engine_http_request" in task:
            raise RpcError(grpc.StatusCode.UNIMPLEMENTED, "App Engine targets are not emulated")
        if "http_request" not in task or not task.http_request.url:
            raise invalid("task.http_request.url is required")
        request = task.http_request
        if not request.url.startswith(("http://", "https://")) or len(request.url) > rules.MAX_URL_CHARS:
            raise invalid(f"task.http_request.url {request.url[:100]!r} is not a valid http(s) URL")
        if "oauth_token" in request:
            raise RpcError(grpc.StatusCode.UNIMPLEMENTED, "OAuth tokens are not emulated; use OIDC")
        if "oidc_token" in request and "@" not in request.oidc_token.service_account_email:
            raise invalid("oidc_token.service_account_email must be a service account email")
        size = len(request.body) + len(request.url) + sum(len(k) + len(v) for k, v in request.headers.items())
        if size > rules.MAX_TASK_BYTES:
            raise invalid(f"Task size too large: {size} bytes exceeds {rules.MAX_TASK_BYTES}")
        now = time.time()
        deadline = rules.DEFAULT_DISPATCH_DEADLINE
        if "dispatch_deadline" in task:
            deadline = task.dispatch_deadline.total_seconds()
            if not rules.MIN_DISPATCH_DEADLINE <= deadline <= rules.MAX_DISPATCH_DEADLINE:
                raise invalid("dispatch_deadline must be between 15 seconds and 30 minutes")
        schedule = task.schedule_time.timestamp() if "schedule_time" in task else now
        if schedule > now + rules.MAX_SCHEDULE_AHEAD:
            raise invalid("schedule_time must be at most 30 days in the future")
        with self._cond:
            queue = self.queue(parent)
            if task.name:
                queue_name, _ = rules.parse_task_name(task.name)
                if queue_name != parent:
                    raise invalid(f"task name {task.name!r} is not in queue {parent!r}")
                name = task.name
            else:
                name = f"{parent}/tasks/{secrets.randbelow(10**19):019d}"
            if name in queue.used_names:
                raise RpcError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    "The task cannot be created because a task with this name existed too recently.",
                )
            headers = forwarded_headers(dict(request.headers))
            if request.body and not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/octet-stream"
            self._seq += 1
            record = TaskRecord(
                name=name,
                queue=parent,
                url=request.url,
                method=tasks_v2.HttpMethod(request.http_method or tasks_v2.HttpMethod.POST),
                headers=headers,
                body=request.body,
                oidc_email=request.oidc_token.service_account_email if "oidc_token" in request else None,
                oidc_audience=request.oidc_token.audience or None if "oidc_token" in request else None,
                schedule_time=max(schedule, now),
                create_time=now,
                dispatch_deadline=deadline,
                seq=self._seq,
            )
            queue.tasks[name] = record
            queue.used_names.add(name)
            self._push(queue, record)
            self._cond.notify_all()
            return record

    def task(self, name: str) -> TaskRecord:
        """The task named, or NOT_FOUND (caller holds the lock)."""
        queue_name, _ = rules.parse_task_name(name)
        found = self.queue(queue_name).tasks.get(name)
        if found is None:
            raise _not_found(f"task {name}")
        return found

    def list_tasks(self, parent: str) -> list[TaskRecord]:
        """Tasks of a queue in schedule order."""
        with self._cond:
            return sorted(self.queue(parent).tasks.values(), key=lambda t: (t.schedule_time, t.name))

    def delete_task(self, name: str) -> None:
        """DeleteTask: the name stays used for de-duplication."""
        with self._cond:
            task = self.task(name)
            del self._queues[task.queue].tasks[name]

    def run_task(self, name: str) -> TaskRecord:
        """RunTask: dispatch now, ignoring rate limits, pause state and schedule time.

        A task already in flight is dispatched again: at-least-once delivery made observable.
        """
        with self._cond:
            task = self.task(name)
            queue = self._queues[task.queue]
            task.version += 1
            self._start(queue, task, time.time())
            return task

    # --- dispatch -----------------------------------------------------------------------------

    def _push(self, queue: QueueRecord, task: TaskRecord) -> None:
        heapq.heappush(queue.heap, (task.schedule_time, task.seq, task.version, task.name))

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.time()
                wake = now + 1.0
                for queue in list(self._queues.values()):
                    at = self._pump(queue, now)
                    if at is not None:
                        wake = min(wake, at)
                self._cond.wait(max(0.0, wake - time.time()))

    def _refill(self, queue: QueueRecord, now: float) -> None:
        answers = queue.answers
        while answers and answers[0][0] < now - THROTTLE_WINDOW_S:
            answers.popleft()
        throttled = sum(1 for _, slow in answers if slow)
        share = throttled / len(answers) if answers else 0.0
        queue.factor = max(THROTTLE_FLOOR, (1.0 - share) ** 2)
        if now >= queue.hold_until:
            rate = queue.config.rate * queue.factor
            queue.tokens = min(queue.config.burst, queue.tokens + (now - queue.last_refill) * rate)
        queue.last_refill = now

    def _pump(self, queue: QueueRecord, now: float) -> float | None:
        """Dispatch what the bucket allows; return when to look again (None: on notify)."""
        if queue.state != RUNNING:
            return None
        self._refill(queue, now)
        while queue.heap:
            schedule, _, version, name = queue.heap[0]
            task = queue.tasks.get(name)
            if task is None or task.version != version or task.in_flight:
                heapq.heappop(queue.heap)
                continue
            if schedule > now:
                return schedule
            if now < queue.hold_until:
                return queue.hold_until
            if queue.in_flight >= queue.config.max_concurrent:
                return None
            if queue.tokens < 1:
                return now + (1 - queue.tokens) / (queue.config.rate * queue.factor)
            heapq.heappop(queue.heap)
            queue.tokens -= 1
            self._start(queue, task, now)
        return None

    def _start(self, queue: QueueRecord, task: TaskRecord, now: float) -> None:
        attempt = Attempt(schedule_time=task.schedule_time, dispatch_time=now)
        headers = {
            **task.headers,
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": queue.short_name,
            "X-CloudTasks-TaskName": task.short_name,
            "X-CloudTasks-TaskRetryCount": str(task.dispatch_count),
            "X-CloudTasks-TaskExecutionCount": str(task.execution_count),
            "X-CloudTasks-TaskETA": f"{task.schedule_time:.6f}",
        }
        previous = task.last_attempt
        if previous is not None and previous.response_time is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(previous.http_status or 0)
            headers["X-CloudTasks-TaskRetryReason"] = previous.error or f"HTTP {previous.http_status}"
        task.dispatch_count += 1
        task.in_flight += 1
        task.first_attempt = task.first_attempt or attempt
        task.last_attempt = attempt
        queue.in_flight += 1
        threading.Thread(
            target=self._deliver,
            args=(queue, task, attempt, headers),
            name="tasks-dispatch",
            daemon=True,
        ).start()

    def _deliver(
        self, queue: QueueRecord, task: TaskRecord, attempt: Attempt, headers: dict[str, str]
    ) -> None:
        outcome = self._delivery.send(task, headers)
        with self._cond:
            self._finish(queue, task, attempt, outcome)
            self._cond.notify_all()

    def _finish(self, queue: QueueRecord, task: TaskRecord, attempt: Attempt, outcome: Outcome) -> None:
        now = time.time()
        attempt.response_time, attempt.http_status, attempt.error = (
            now,
            outcome.status,
            outcome.error,
        )
        task.in_flight -= 1
        queue.in_flight -= 1
        queue.answers.append((now, outcome.status in (429, 503)))
        if outcome.status is not None:
            task.response_count += 1
            queue.executed.append(now)
            if outcome.status < 500:
                task.execution_count += 1
        log.info(
            "dispatch queue=%s task=%s attempt=%d status=%s %.0fms%s",
            queue.short_name,
            task.short_name,
            task.dispatch_count,
            outcome.status,
            (now - attempt.dispatch_time) * 1000,
            f" error={outcome.error}" if outcome.error else "",
        )
        if self._queues.get(queue.name) is not queue or queue.tasks.get(task.name) is not task:
            return  # deleted, purged or already acknowledged meanwhile
        if outcome.ok:
            del queue.tasks[task.name]
            return
        if outcome.status in (429, 503):
            queue.tokens = min(queue.tokens, 0.0)
            if outcome.retry_after is not None:
                queue.hold_until = max(queue.hold_until, now + outcome.retry_after)
        first = task.first_attempt.dispatch_time if task.first_attempt else now
        if queue.config.retry.exhausted(task.dispatch_count, now - first):
            log.warning("task %s failed permanently after %d attempts", task.name, task.dispatch_count)
            del queue.tasks[task.name]
            return
        if task.in_flight:
            return  # a concurrent RunTask dispatch will settle it
        delay = queue.config.retry.backoff(task.dispatch_count)
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        task.schedule_time = now + delay
        task.version += 1
        self._push(queue, task)

    # --- helpers for the service layer --------------------------------------------------------

    def locked(self) -> threading.Condition:
        """The lock the service layer holds while it renders records into messages."""
        return self._cond

    def wait_idle(self, queue_names: Iterable[str], timeout: float) -> bool:
        """Block until the named queues hold no tasks (a test and launcher convenience)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._queues.get(n) and self._queues[n].tasks for n in queue_names):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True
