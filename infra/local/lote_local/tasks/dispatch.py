"""The emulator's dispatch loop: token buckets, concurrency caps, throttling, retries."""

from __future__ import annotations

import heapq
import logging
import threading
import time

from lote_local.tasks.delivery import Delivery, Outcome
from lote_local.tasks.store import RUNNING, Attempt, QueueConfig, QueueRecord, TaskRecord

log = logging.getLogger("lote.tasks")

# Throttling: the queue runs at rate × (1 - share of 429/503/no answers in the last 5 s)², at least
# 1/64 of its rate. A full outage slows it to the floor; a few bad items barely do.
THROTTLE_FLOOR = 1 / 64
THROTTLE_WINDOW_S = 5.0


class Dispatcher:
    """The scheduler thread's logic; Emulator supplies the queues, the lock and the delivery."""

    _cond: threading.Condition
    _queues: dict[str, QueueRecord]
    _stopped: bool
    _delivery: Delivery

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

    def apply_config(self, queue: QueueRecord, config: QueueConfig) -> None:
        """Make `config` the one dispatch obeys (the lock is held); wakes whoever waits on it."""
        queue.config = config
        queue.tokens = min(queue.tokens, config.burst)
        self._cond.notify_all()

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
        while queue.pending and now >= queue.pending[0][0]:
            self.apply_config(queue, queue.pending.pop(0)[1])
        due = queue.pending[0][0] if queue.pending else None
        if queue.state != RUNNING:
            return due
        self._refill(queue, now)
        at = self._dispatch(queue, now)
        return due if at is None else at if due is None else min(at, due)

    def _dispatch(self, queue: QueueRecord, now: float) -> float | None:
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
        queue.answers.append((now, outcome.slows_queue))
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
        if outcome.slows_queue:
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
