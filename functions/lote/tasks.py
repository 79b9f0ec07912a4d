"""Every kind of task lote puts on a Cloud Tasks queue, defined once.

A task kind is a pydantic model: its fields are the body the worker receives (the code that
enqueues and the route that handles parse the same class), and it knows its queue, its route and
its deterministic name, so a task created twice is the same task (`ALREADY_EXISTS`) and the repair
sweep can ask Cloud Tasks whether it still exists. Two ways to create one:

- `create`: from a task handler, for its successor; a failure raises, so the handler's own task
  is retried and creates it then.
- `enqueue`: after the commit of the document the task works on; on success the document is
  flagged (`enqueued`), on failure it is left unflagged for the repair sweep, which creates the
  same task later. The request that committed it answers either way: nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lote import timeutil, tracing
from lote.services import Services
from lote.settings import Settings

log = logging.getLogger("lote.tasks")
PARALLEL_CREATES = 16
# A field that only makes the task's name unique is not sent: the handler does not need it, and a
# body stays what a worker of the previous release (which refuses unknown fields) accepts while a
# deploy rolls out the api and the worker one after the other.
NAME_ONLY: Any = Field(default=0, exclude=True)


class Payload(BaseModel):
    """The body of a call to a worker route; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Task(Payload):
    """A task kind: subclasses name their route and queue, and derive their task id."""

    route: ClassVar[str]

    def queue(self, settings: Settings) -> str:
        """The queue this kind goes to (queue.yaml sets its rate and retries)."""
        return settings.fanout_queue

    def task_id(self) -> str:
        """The deterministic name: everything that makes this occurrence unique."""
        raise NotImplementedError

    def deadline_s(self, settings: Settings) -> int:
        """How long Cloud Tasks waits for the handler's answer."""
        return settings.task_dispatch_deadline_s

    @classmethod
    def retry_window_s(cls, settings: Settings) -> float:
        """How long the queue keeps retrying one task (its max_retry_duration)."""
        raise NotImplementedError(f"{cls.__name__} tasks are not watched by the repair sweep")


class Generate(Task):
    """Generate one image: a job's attempt. `gen` changes only when the repair sweep replaces a
    task that Cloud Tasks gave up on, or a batch retry reruns the item."""

    route: ClassVar[str] = "/tasks/generate"
    job_id: str
    gen: int = NAME_ONLY

    def queue(self, settings: Settings) -> str:
        """The generation queue, whose rate is the model's quota."""
        return settings.generation_queue

    def task_id(self) -> str:
        """`{job}-{gen}`."""
        return f"{self.job_id}-{self.gen}"

    @classmethod
    def retry_window_s(cls, settings: Settings) -> float:
        """The generation queue's max_retry_duration."""
        return settings.generation_max_retry_s


class DeliverWebhook(Task):
    """Deliver one webhook event; `gen` changes on a redelivery or a replaced task."""

    route: ClassVar[str] = "/tasks/webhook"
    delivery_id: str
    gen: int = 0

    def queue(self, settings: Settings) -> str:
        """The webhook queue."""
        return settings.webhook_queue

    def task_id(self) -> str:
        """`{delivery}-{gen}`."""
        return f"{self.delivery_id}-{self.gen}"

    def deadline_s(self, settings: Settings) -> int:
        """The receiver's timeout and room to record the attempt."""
        return int(settings.webhook_timeout_s) + 30

    @classmethod
    def retry_window_s(cls, settings: Settings) -> float:
        """The webhook queue's max_retry_duration."""
        return settings.webhook_max_retry_s


class PlanFanout(Task):
    """Enqueue a batch's chunk tasks; `gen` changes when the sweep resumes a lost fan-out."""

    route: ClassVar[str] = "/tasks/fanout-plan"
    batch_id: str
    gen: int = 0

    def task_id(self) -> str:
        """`{batch}-plan-{gen}`."""
        return f"{self.batch_id}-plan-{self.gen}"


class FanoutChunk(Task):
    """Create one chunk's item jobs and their generation tasks."""

    route: ClassVar[str] = "/tasks/fanout-chunk"
    batch_id: str
    chunk: int
    gen: int = NAME_ONLY

    def task_id(self) -> str:
        """`{batch}-c{chunk}-{gen}`."""
        return f"{self.batch_id}-c{self.chunk}-{self.gen}"


class CheckBatch(Task):
    """One link of a batch's checker chain (`gen` per run of the batch, `seq` per link), which
    settles the batch when its items are done. Names make a forked chain collapse into one."""

    route: ClassVar[str] = "/tasks/batch-check"
    batch_id: str
    gen: int
    seq: int

    def task_id(self) -> str:
        """`{batch}-check-{gen}-{seq}`."""
        return f"{self.batch_id}-check-{self.gen}-{self.seq}"


class EmitItemEvents(Task):
    """A page of the item events of a canceled batch (items canceled in bulk, without a task)."""

    route: ClassVar[str] = "/tasks/batch-item-events"
    batch_id: str
    completion: int
    start: int = 0
    # Lets the repair sweep start a fresh chain (the handler is idempotent).
    tag: str = Field(default="", exclude=True)

    def task_id(self) -> str:
        """`{batch}-items-{completion}-{start}{tag}`."""
        return f"{self.batch_id}-items-{self.completion}-{self.start}{self.tag}"


class CancelItems(Task):
    """A page of a canceled batch's queued items to cancel, from index `start` (a large batch's
    cancel answers at once and carries on here, page by page)."""

    route: ClassVar[str] = "/tasks/batch-cancel"
    batch_id: str
    start: int = 0
    seq: int = 0  # the link's place in its chain: a page run again from the same start is a new link
    tag: str = Field(default="", exclude=True)  # lets the repair sweep start a fresh chain

    def task_id(self) -> str:
        """`{batch}-cancel-{seq}-{start}{tag}`."""
        return f"{self.batch_id}-cancel-{self.seq}-{self.start}{self.tag}"


class RetryItems(Task):
    """A page of a large batch's failed items to queue again, from index `start`, for the retry of
    generation `gen` (a newer retry request supersedes the chain)."""

    route: ClassVar[str] = "/tasks/batch-retry"
    batch_id: str
    gen: int
    start: int = 0
    seq: int = 0  # the link's place in its chain: a page run again from the same start is a new link
    tag: str = Field(default="", exclude=True)  # lets the repair sweep start a fresh chain

    def task_id(self) -> str:
        """`{batch}-retry-{gen}-{seq}-{start}{tag}`."""
        return f"{self.batch_id}-retry-{self.gen}-{self.seq}-{self.start}{self.tag}"


class RefreshBatch(Task):
    """Count a large batch's items and record the tally a status read shows (one per `slot`, a
    time bucket, so polls ask for at most one count per bucket)."""

    route: ClassVar[str] = "/tasks/batch-refresh"
    batch_id: str
    slot: int = NAME_ONLY

    def task_id(self) -> str:
        """`{batch}-refresh-{slot}`."""
        return f"{self.batch_id}-refresh-{self.slot}"


class Dispatch(Task):
    """One tick of the dispatcher of a model pool: the pace for the window, then the release of
    held work. One name per pool and window, so a tick created twice (its own successor and a
    restart by the sweep or a new lane) is one tick."""

    route: ClassVar[str] = "/tasks/dispatch"
    pool: str
    window: int

    def queue(self, settings: Settings) -> str:
        """The dispatch queue (nothing else waits in it)."""
        return settings.dispatch_queue

    def task_id(self) -> str:
        """`dispatch-{pool}-{window}`."""
        return f"dispatch-{self.pool}-{self.window}"


class SubmitModelBatch(Task):
    """Submit a gathered model batch job to Gemini's batch mode (batchmode/service.py); `gen` moves
    only when the repair sweep restarts a submission whose task is gone."""

    route: ClassVar[str] = "/tasks/model-batch/submit"
    mb: str
    gen: int = 0  # sent: a submission the sweep replaced must not also submit

    def task_id(self) -> str:
        """`{mb}-submit-{gen}`."""
        return f"{self.mb}-submit-{self.gen}"


class PollModelBatch(Task):
    """One look at a submitted model batch job, each scheduling the next until it ends and its
    lines have landed; `seq` is the look's number (the model batch document says which one is due)."""

    route: ClassVar[str] = "/tasks/model-batch/poll"
    mb: str
    seq: int

    def task_id(self) -> str:
        """`{mb}-poll-{seq}`."""
        return f"{self.mb}-poll-{self.seq}"


class Sweep(Payload):
    """The repair sweep; Cloud Scheduler calls it with `{}` (Terraform), no task is created."""

    route: ClassVar[str] = "/tasks/sweep"


class Reconcile(Payload):
    """The Stripe reconciliation (billing/reconcile.py); Cloud Scheduler calls it with `{}`."""

    route: ClassVar[str] = "/tasks/reconcile"


def check_at(services: Services, kind: type[Task]) -> dt.datetime:
    """When a task of `kind` created now may have run out of attempts (its queue's retry window,
    plus the sweep's slack): from then on the repair sweep asks Cloud Tasks whether it exists."""
    s = services.settings
    return timeutil.now() + dt.timedelta(seconds=kind.retry_window_s(s) + s.repair_after_s)


def create(services: Services, task: Task, delay_s: float = 0.0, trace: str | None = None) -> bool:
    """Create the task; False when its name is taken (it exists or existed: the same task). Any
    other failure raises, so the caller's own task is retried. It carries `trace` (a job's
    `traceparent`), else the current span's: its handler's spans join that trace (tracing.py)."""
    s = services.settings
    return services.tasks.create_http_task(
        task.queue(s),
        task.task_id(),
        f"{s.worker_url}{task.route}",
        task.model_dump_json().encode(),
        audience=s.worker_url,
        invoker=s.tasks_invoker_email,
        deadline_s=task.deadline_s(s),
        delay_s=delay_s,
        headers=tracing.headers(trace),
    )


def create_many(
    services: Services,
    tasks: Sequence[Task],
    delays_s: Sequence[float] = (),
    traces: Sequence[str | None] = (),
) -> None:
    """Create tasks in parallel (each `delays_s[i]` seconds from now, if given, carrying `traces[i]`,
    else the current trace); any failure other than ALREADY_EXISTS is raised (retry the step)."""
    delays = list(delays_s) or [0.0] * len(tasks)
    carried = list(traces) or [tracing.current()] * len(tasks)  # the pool's threads have no context
    with ThreadPoolExecutor(max_workers=PARALLEL_CREATES) as pool:
        list(pool.map(lambda args: create(services, *args), zip(tasks, delays, carried, strict=True)))


def enqueue(services: Services, task: Task, record: Callable[[], object], delay_s: float = 0.0) -> bool:
    """After the commit: create the task (`delay_s` from now), then `record` that it exists. False,
    logged, when either failed: the document stays unflagged and the repair sweep creates the same
    task later."""
    from google.api_core.exceptions import GoogleAPICallError, NotFound, RetryError

    try:
        create(services, task, delay_s)
    except (GoogleAPICallError, RetryError) as exc:
        log.warning("task %s not created, left to the repair sweep: %s", task.task_id(), exc)
        return False
    try:
        record()
    except NotFound:
        # Staged by a try that did not commit (a transaction's or an optimistic commit's): the task
        # will find nothing to do.
        return False
    except (GoogleAPICallError, RetryError) as exc:
        log.warning("task %s created but not recorded, left to the repair sweep: %s", task.task_id(), exc)
        return False
    return True


def exists(services: Services, task: Task) -> bool:
    """Whether Cloud Tasks still holds the task (GetTask): False means nothing will run it again."""
    return services.tasks.exists(task.queue(services.settings), task.task_id())
