"""The worker's orchestration without Firestore: each attempt is claimed once, ends in one Outcome
(jobs/outcome.py has the rules), is settled once, and only then does what the commit made due (a
deferred job's task, the dispatcher for a held one, a created output deleted when a cancel won).
Stores, the pipeline and the clients are replaced by recorders; the rules and the worker are real."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest

from lote.clients.model import ModelOperatorTrouble, ModelTransient
from lote.jobs import memory, outcome, pipeline, store, worker
from lote.jobs.outcome import End
from lote.leases import Claim, ClaimKind
from lote.settings import Settings
from lote.statuses import JobStatus

CREATED = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
OUTPUT = {"bucket": "out", "object": "outputs/ten_a/gen_x.png", "mime_type": "image/png", "width": 1,
          "height": 1, "bytes": 1, "sha256": "0"}  # fmt: skip


@dataclass
class _Storage:
    deleted: list[tuple[str, str]] = field(default_factory=list)

    def delete(self, bucket: str, name: str) -> None:
        self.deleted.append((bucket, name))


@dataclass
class _Firestore:
    db: Any = None  # never reached: the stores are replaced


@dataclass
class _Services:
    settings: Settings
    storage: _Storage = field(default_factory=_Storage)
    firestore: _Firestore = field(default_factory=_Firestore)


@dataclass
class _World:
    """What the worker did, in order."""

    done: list[tuple[str, Any]] = field(default_factory=list)
    written: str = JobStatus.QUEUED  # what the settle's commit writes (a cancel may win)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> _World:
    found = _World()
    job = {"tenant_id": "ten_a", "model": "gemini-2.5-flash-image", "status": JobStatus.RUNNING,
           "attempts": 1, "task_gen": 0, "created_at": CREATED, "prompt": "a room", "output_format": "png"}  # fmt: skip

    def claim(*_args: Any) -> Claim:
        found.done.append(("claim", None))
        return Claim(ClaimKind.CLAIMED, dict(job))

    def settle(_db: Any, job_id: str, attempt: int, ended: outcome.Outcome, outbox: Any = None) -> str:
        found.done.append(("settle", ended))
        return found.written

    monkeypatch.setattr(store, "claim", claim)
    monkeypatch.setattr(store, "settle", settle)
    monkeypatch.setattr(worker.tasks, "check_at", lambda *_a: CREATED)
    monkeypatch.setattr(
        worker.jobs, "enqueue", lambda _s, job_id, *task: found.done.append(("enqueue", task))
    )
    monkeypatch.setattr(worker.dispatch, "ensure_running", lambda _s, pool: found.done.append(("wake", pool)))
    monkeypatch.setattr(worker.state, "breaker_opened_at", lambda *_a: None)
    return found


def _run(world: _World, monkeypatch: pytest.MonkeyPatch, result: Any) -> tuple[Any, _Services]:
    def run(*_args: Any) -> pipeline.Result:
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(pipeline, "run", run)
    services = _Services(Settings(_env_file=None))
    return worker.run(services, "gen_x", 0), services  # type: ignore[arg-type]


def _ends(world: _World) -> list[str]:
    return [step for step, _ in world.done]


def test_an_image_is_settled_once_after_its_claim(world: _World, monkeypatch: pytest.MonkeyPatch):
    world.written = JobStatus.SUCCEEDED
    answer, services = _run(world, monkeypatch, pipeline.Result(OUTPUT, None, {}, 10))
    assert _ends(world) == ["claim", "settle"] and world.done[1][1].end is End.SUCCEEDED
    assert answer.status == 200 and answer.body == {"result": "succeeded"} and not services.storage.deleted


def test_a_cancel_that_wins_the_settle_deletes_the_image_this_attempt_stored(
    world: _World, monkeypatch: pytest.MonkeyPatch
):
    world.written = JobStatus.CANCELED
    answer, services = _run(world, monkeypatch, pipeline.Result(OUTPUT, None, {}, 10, created=True))
    assert services.storage.deleted == [("out", OUTPUT["object"])]
    assert answer.body == {"result": "canceled"}


def test_held_work_wakes_the_dispatcher_only_once_written_back(
    world: _World, monkeypatch: pytest.MonkeyPatch
):
    answer, _ = _run(world, monkeypatch, ModelOperatorTrouble("model_key_invalid", "API key expired."))
    assert _ends(world) == ["claim", "settle", "wake"]
    assert answer.body == {"result": "held", "code": "model_key_invalid"}
    world.done.clear()
    world.written = JobStatus.CANCELED  # a cancel won: nothing is due
    _run(world, monkeypatch, ModelOperatorTrouble("model_key_invalid", "API key expired."))
    assert _ends(world) == ["claim", "settle"]


def test_deferred_work_gets_its_next_task_after_the_commit(world: _World, monkeypatch: pytest.MonkeyPatch):
    _run(world, monkeypatch, pipeline.OutOfTime(1))
    assert _ends(world) == ["claim", "settle", "enqueue"]
    generation, delay = world.done[2][1]
    assert generation == 1 and delay == 0.0


def test_a_retried_failure_answers_the_queue_from_its_outcome(world: _World, monkeypatch: pytest.MonkeyPatch):
    answer, _ = _run(world, monkeypatch, ModelTransient("model_unavailable", "overloaded"))
    assert _ends(world) == ["claim", "settle"] and world.done[1][1].end is End.RETRY
    assert answer.status == 500 and answer.body["error"]["code"] == "model_unavailable"


def test_a_worker_out_of_memory_defers_without_running_the_attempt(
    world: _World, monkeypatch: pytest.MonkeyPatch
):
    def full(*_args: Any) -> Any:
        raise memory.MemoryBusy("the budget is full")

    monkeypatch.setattr(memory, "hold", full)
    answer, _ = _run(world, monkeypatch, AssertionError("the attempt must not run"))
    assert _ends(world) == ["claim", "settle", "enqueue"]
    assert answer.body == {"result": "deferred", "code": "worker_busy"}


def test_a_lost_job_is_not_settled(world: _World, monkeypatch: pytest.MonkeyPatch):
    answer, _ = _run(world, monkeypatch, pipeline.Stopped("stale"))
    assert _ends(world) == ["claim"] and answer.body["result"] == "noop"
