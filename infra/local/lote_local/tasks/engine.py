"""The emulator's state machine: the Cloud Tasks RPCs, the dispatch scheduler and retries."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Iterable

import grpc
from google.cloud import tasks_v2

from lote_local.tasks import rules
from lote_local.tasks.delivery import Delivery
from lote_local.tasks.dispatch import Dispatcher
from lote_local.tasks.oidc import TokenMinter
from lote_local.tasks.rules import RpcError, invalid
from lote_local.tasks.store import (
    QueueConfig,
    QueueRecord,
    TaskRecord,
    config_from_queue,
    forwarded_headers,
)

log = logging.getLogger("lote.tasks")


def _not_found(what: str) -> RpcError:
    return RpcError(grpc.StatusCode.NOT_FOUND, f"Requested entity was not found: {what}")


class Emulator(Dispatcher):
    """Every queue and task of every project, and the thread that dispatches them."""

    def __init__(self, minter: TokenMinter | None = None, update_delay_s: float = 0.0) -> None:
        self.minter = minter or TokenMinter()
        # Cloud Tasks documents that a queue configuration change can take minutes to take effect.
        self.update_delay_s = update_delay_s
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
            declared = record.pending[-1][1] if record.pending else record.config
            config = config_from_queue(queue, declared, set(paths) if paths else None)
            if self.update_delay_s > 0:
                record.pending.append((time.time() + self.update_delay_s, config))
            else:
                record.pending.clear()
                self.apply_config(record, config)
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

    def rates(self, window_s: float = 10.0) -> dict[str, dict[str, float]]:
        """Per queue: the dispatch rate allowed now (QueueStats' effective_execution_rate: the
        configured rate as throttling scales it) and the rate achieved, answered attempts per
        second over the last `window_s` — the number an operator wants and QueueStats lacks."""
        now = time.time()
        with self._cond:
            return {
                name: {
                    "allowed_per_s": round(record.config.rate * record.factor, 3),
                    "achieved_per_s": round(
                        sum(1 for t in record.executed if t >= now - window_s) / window_s, 3
                    ),
                    "in_flight": record.in_flight,
                    "tasks": len(record.tasks),
                }
                for name, record in sorted(self._queues.items())
            }

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
