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
from lote.jobs import memory, outcome, outputs, pipeline, store, worker
from lote.jobs.outcome import End
from lote.leases import Claim, ClaimKind
from lote.reuse import rules as reuse
from lote.reuse import store as reuse_store
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
    found: list[reuse.Found] = field(default_factory=list)  # what reuse lookups find, in turn (else go)
    job: dict[str, Any] = field(default_factory=dict)  # the claimed job's fields besides the usual


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> _World:
    found = _World()
    job = {"tenant_id": "ten_a", "model": "gemini-2.5-flash-image", "status": JobStatus.RUNNING,
           "attempts": 1, "task_gen": 0, "created_at": CREATED, "prompt": "a room", "output_format": "png"}  # fmt: skip

    def claim(*_args: Any) -> Claim:
        found.done.append(("claim", None))
        return Claim(ClaimKind.CLAIMED, {**job, **found.job})

    def look(_db: Any, _tenant: str, fp: str, *_args: Any) -> reuse.Found:
        found.done.append(("look", fp))
        return found.found.pop(0) if found.found else reuse.Found(reuse.Kind.GO)

    def settle(
        _db: Any, job_id: str, attempt: int, ended: outcome.Outcome, outbox: Any = None, started: Any = None
    ) -> str:
        found.done.append(("settle", ended))
        return found.written

    monkeypatch.setattr(store, "claim", claim)
    monkeypatch.setattr(reuse_store, "claim", look)
    monkeypatch.setattr(reuse_store, "record", lambda _db, _t, fp, *_a: found.done.append(("record", fp)))
    monkeypatch.setattr(reuse_store, "release", lambda _db, _t, fp, _j: found.done.append(("release", fp)))
    monkeypatch.setattr(reuse_store, "forget", lambda _db, _t, fp, src: found.done.append(("forget", src)))
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
    assert _ends(world) == ["claim", "look", "settle", "record"] and world.done[2][1].end is End.SUCCEEDED
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
    assert _ends(world) == ["claim", "look", "settle", "wake"]  # it keeps its claim to make the image
    assert answer.body == {"result": "held", "code": "model_key_invalid"}
    world.done.clear()
    world.written = JobStatus.CANCELED  # a cancel won: nothing is due but the claim's release
    _run(world, monkeypatch, ModelOperatorTrouble("model_key_invalid", "API key expired."))
    assert _ends(world) == ["claim", "look", "settle", "release"]


def test_deferred_work_gets_its_next_task_after_the_commit(world: _World, monkeypatch: pytest.MonkeyPatch):
    _run(world, monkeypatch, pipeline.OutOfTime(1))
    assert _ends(world) == ["claim", "look", "settle", "enqueue"]
    generation, delay = world.done[3][1]
    assert generation == 1 and delay == 0.0


def test_a_retried_failure_answers_the_queue_from_its_outcome(world: _World, monkeypatch: pytest.MonkeyPatch):
    answer, _ = _run(world, monkeypatch, ModelTransient("model_unavailable", "overloaded"))
    assert _ends(world) == ["claim", "look", "settle"] and world.done[2][1].end is End.RETRY
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
    assert _ends(world) == ["claim", "look"] and answer.body["result"] == "noop"


# --- Reuse: an identical request's image, or a wait for it -------------------------------------


def test_a_reused_image_is_copied_and_settled_without_the_model(
    world: _World, monkeypatch: pytest.MonkeyPatch
):
    source = {**OUTPUT, "object": "outputs/ten_a/gen_first.png"}
    world.found = [reuse.Found(reuse.Kind.HIT, "gen_first", source, {"passed": True})]
    world.job = {"price": 3}
    copied: list[Any] = []

    def copy(_services: Any, job_id: str, _job: Any, src: Any) -> tuple[Any, bool]:
        copied.append(src["object"])
        return {**src, "object": f"outputs/ten_a/{job_id}.png"}, True

    monkeypatch.setattr(outputs, "copy", copy)
    world.written = JobStatus.SUCCEEDED
    answer, _ = _run(world, monkeypatch, AssertionError("the model must not be called"))
    assert _ends(world) == ["claim", "look", "settle"] and copied == ["outputs/ten_a/gen_first.png"]
    ended = world.done[2][1]
    assert ended.end is End.SUCCEEDED and ended.update["reused_from"] == "gen_first"
    assert ended.update["discount"] == 3 and "call" not in ended.update  # free by default; no model call
    assert ended.update["output"]["object"] == "outputs/ten_a/gen_x.png" and ended.fingerprint is None
    assert answer.body == {"result": "succeeded"}


def test_a_reused_image_that_is_gone_is_forgotten_and_the_job_makes_its_own(
    world: _World, monkeypatch: pytest.MonkeyPatch
):
    world.found = [reuse.Found(reuse.Kind.HIT, "gen_first", OUTPUT, None)]
    monkeypatch.setattr(outputs, "copy", lambda *_a: None)
    world.written = JobStatus.SUCCEEDED
    _run(world, monkeypatch, pipeline.Result(OUTPUT, None, {}, 10))
    assert _ends(world) == ["claim", "look", "forget", "look", "settle", "record"]


def test_an_identical_request_in_flight_is_waited_for_without_reading_inputs_again(
    world: _World, monkeypatch: pytest.MonkeyPatch
):
    world.found = [reuse.Found(reuse.Kind.WAIT, owner="gen_first")]
    answer, _ = _run(world, monkeypatch, AssertionError("the model must not be called"))
    assert _ends(world) == ["claim", "look", "settle", "enqueue"]
    ended = world.done[2][1]
    assert ended.end is End.DEFERRED and ended.update["waits_on"] == "gen_first"
    assert answer.body == {"result": "deferred", "code": "reuse_wait"}
    # Its next attempt looks with the fingerprint it kept, before any input is read.
    world.done.clear()
    world.job = {"fingerprint": ended.update["fingerprint"], "inputs": ["gs://in/uploads/ten_a/missing.png"]}

    def no_inputs(*_args: Any) -> Any:
        raise AssertionError("inputs read before the look")

    monkeypatch.setattr(worker.inputs, "load", no_inputs)
    world.found = [reuse.Found(reuse.Kind.WAIT, owner="gen_first")]
    _run(world, monkeypatch, AssertionError("the model must not be called"))
    assert world.done[1] == ("look", ended.update["fingerprint"])


def test_a_job_that_asked_for_a_fresh_image_is_not_looked_up(world: _World, monkeypatch: pytest.MonkeyPatch):
    world.job = {"reuse": False}
    world.written = JobStatus.SUCCEEDED
    _run(world, monkeypatch, pipeline.Result(OUTPUT, None, {}, 10))
    assert _ends(world) == ["claim", "settle"]


def test_a_failed_maker_releases_its_claim_for_the_next_identical_job(
    world: _World, monkeypatch: pytest.MonkeyPatch
):
    world.written = JobStatus.FAILED
    _run(world, monkeypatch, ModelTransient("model_unavailable", "overloaded"))
    assert _ends(world) == ["claim", "look", "settle", "release"]
