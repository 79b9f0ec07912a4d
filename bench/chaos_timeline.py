"""The chaos run's disruptions: SIGKILLs (and waiting for the supervisor to bring a function back),
the api dying between its commit and its answer, and duplicate deliveries forced with RunTask."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests

from bench.chaos_actors import Single, force_runs, sample, task_names, tasks_client
from lote.batches import store as batch_store
from lote.jobs.store import JOBS
from lote.services import Services
from lote_local.stack import Stack

T = TypeVar("T")


def until(
    predicate: Callable[[], T], timeout: float, what: str, every: float = 0.2, last: object = None
) -> T:
    """Poll `predicate` until it returns something truthy (returned); TimeoutError after `timeout`
    (saying `last`, what the predicate saw, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s" + (f"; last seen {last}" if last else ""))
        time.sleep(every)


class Timeline:
    """What the chaos did, when, and how long each function took to come back."""

    def __init__(self, stack: Stack, services: Services, tenant_id: str, started: float) -> None:
        self.stack = stack
        self.services = services
        self.tenant_id = tenant_id
        self.started = started
        self.client = tasks_client(f"127.0.0.1:{stack.config.tasks_port}")
        self.queues = {name: services.tasks.queue_path(name) for name in ("generation", "fanout")}
        self.kills: list[dict[str, Any]] = []
        self.forced: Counter[str] = Counter({"generation_tasks": 0, "generation_runs": 0,
                                             "fanout_tasks": 0, "fanout_runs": 0})  # fmt: skip
        self.stranded: list[str] = []
        self.stranded_had_task = 0

    # --- duplicate deliveries -----------------------------------------------------------------

    @contextmanager
    def fanout_paused(self) -> Iterator[None]:
        """Fan-out tasks wait inside the block (RunTask still runs them: the duplicates we force)."""
        self.client.pause_queue(name=self.queues["fanout"])
        try:
            yield
        finally:
            self.client.resume_queue(name=self.queues["fanout"])

    def force_fanout(self, batch_id: str, chunks: int) -> None:
        """Run the batch's plan task twice at once, then each chunk task twice at once."""
        fanout = self.queues["fanout"]
        plan = until(lambda: task_names(self.client, fanout, f"{batch_id}-plan-"), 30, "the plan task")
        self._force("fanout", plan)
        chunk = re.compile(rf"/{batch_id}-c\d+-")

        def chunk_tasks() -> list[str]:
            names = [n for n in task_names(self.client, fanout) if chunk.search(n)]
            return names if len(names) >= chunks else []

        self._force("fanout", until(chunk_tasks, 30, "the chunk tasks"))
        db = self.services.firestore.db
        until(lambda: batch_store.chunks_done(db, batch_id) >= chunks, 60, "the fan-out")

    def force_generation(self, want: int) -> None:
        """Deliver `want` queued generation tasks twice at once (a random sample of the queue)."""
        if want > 0:
            names = task_names(self.client, self.queues["generation"])
            self._force("generation", sample(names, want, seed=len(self.kills)))

    def force_checkers(self) -> None:
        """Deliver every waiting batch-checker task twice at once."""
        self._force("fanout", task_names(self.client, self.queues["fanout"], "-check-"))

    def _force(self, kind: str, names: list[str]) -> None:
        tasks, runs = force_runs(self.client, names)
        self.forced[f"{kind}_tasks"] += tasks
        self.forced[f"{kind}_runs"] += runs

    # --- kills --------------------------------------------------------------------------------

    def kill(self, name: str, before_back: Callable[[], None] | None = None) -> None:
        """SIGKILL a function and wait until the supervisor's new instance is healthy."""
        at = time.monotonic()
        pid = self.stack.kill(name)
        if before_back is not None:
            before_back()
        until(lambda: self._back(name, pid), 60, f"{name} back after SIGKILL", every=0.05)
        self.kills.append({"service": name, "at_s": round(at - self.started, 1),
                           "back_after_s": round(time.monotonic() - at, 2)})  # fmt: skip

    def _back(self, name: str, pid: int) -> bool:
        service = self.stack.service(name)
        if service.process is None or service.process.pid == pid:
            return False
        try:
            return requests.get(service.health_url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill_api_after_commit(self) -> None:
        """Freeze Cloud Tasks (SIGSTOP) so submissions stop after their commit, inside CreateTask,
        then SIGKILL the api: those clients lose the answer to work that was committed."""
        self.stack.kill("tasks", signal.SIGSTOP)
        frozen = True

        def thaw() -> None:
            nonlocal frozen
            self.stack.kill("tasks", signal.SIGCONT)
            frozen = False

        try:
            deadline = time.monotonic() + 10
            while len(self._unenqueued()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.stranded = self._unenqueued()
            self.kill("api", before_back=thaw)
        finally:
            if frozen:
                thaw()
        self.stranded_had_task = sum(self._has_task(job_id) for job_id in self.stranded)

    def _unenqueued(self) -> list[str]:
        from google.cloud.firestore import FieldFilter

        query: Any = self.services.firestore.db.collection(JOBS)
        for field, value in (("tenant_id", self.tenant_id), ("batch_id", None), ("enqueued", False)):
            query = query.where(filter=FieldFilter(field, "==", value))
        return [snapshot.id for snapshot in query.select([]).stream()]

    def _has_task(self, job_id: str) -> bool:
        """Right after the api is back: did the job get its task anyway (the frozen CreateTask was
        processed), or does it wait for the sweep?"""
        job = self.services.firestore.db.collection(JOBS).document(job_id).get().to_dict() or {}
        if job.get("enqueued") or job.get("status") != "queued":
            return True
        return self.services.tasks.exists(self.services.settings.generation_queue, f"{job_id}-0")

    def stranded_outcome(self, singles: list[Single]) -> dict[str, int]:
        """The requests the api died in after committing: answered by a retry with their job? A job
        still unmarked at the freeze whose client was answered at once had its CreateTask through
        just before the freeze (only its `enqueued` mark was still to come): its request did not
        die. A job no client holds is an answer lost."""
        owners = {s.job_id: s for s in singles if s.job_id}
        return {
            "jobs": len(self.stranded),
            "answered_with_their_job": sum(
                1 for job_id in self.stranded if job_id in owners and owners[job_id].connection_errors
            ),
            "answered_before_the_kill": sum(
                1 for job_id in self.stranded if job_id in owners and not owners[job_id].connection_errors
            ),
            "lost": sum(1 for job_id in self.stranded if job_id not in owners),
            "task_existed_after_restart": self.stranded_had_task,
            "left_to_the_sweep": len(self.stranded) - self.stranded_had_task,
        }

    def items_done(self, batch_id: str) -> Callable[[], int]:
        """A counter of the batch's terminal items."""
        db = self.services.firestore.db

        def done() -> int:
            counts = batch_store.counts(db, batch_id)
            return counts["succeeded"] + counts["failed"] + counts["canceled"]

        return done
