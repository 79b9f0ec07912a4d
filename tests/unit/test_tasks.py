"""Task kinds (lote/tasks.py): one definition serves the enqueuer and the handler."""

from __future__ import annotations

import json

import pydantic
import pytest

from lote import tasks
from lote.api.apps import worker_app
from lote.settings import Settings

KINDS = [
    tasks.Generate(job_id="gen_1", gen=2),
    tasks.DeliverWebhook(delivery_id="msg_1", gen=1),
    tasks.PlanFanout(batch_id="bat_1", gen=1),
    tasks.FanoutChunk(batch_id="bat_1", chunk=3, gen=1),
    tasks.CheckBatch(batch_id="bat_1", gen=0, seq=4),
    tasks.EmitItemEvents(batch_id="bat_1", completion=1, start=100),
    tasks.Dispatch(pool="generation", window=123),
    tasks.CancelItems(batch_id="bat_1", start=500, seq=3),
    tasks.RetryItems(batch_id="bat_1", gen=2, start=500, seq=3),
    tasks.RefreshBatch(batch_id="bat_1", slot=7),
    tasks.SubmitModelBatch(mb="mb_1", gen=1),
    tasks.PollModelBatch(mb="mb_1", seq=2),
]


@pytest.mark.parametrize("task", KINDS, ids=lambda t: type(t).__name__)
def test_the_body_sent_is_the_body_the_handler_parses(task):
    received = type(task).model_validate_json(task.model_dump_json())
    assert received.model_dump() == task.model_dump()


# What the previous release's handlers accepted (they refuse unknown fields): a deploy rolls the api
# and the worker out one after the other, so new tasks must keep these exact bodies.
PREVIOUS_BODIES = {
    "Generate": {"job_id"},
    "DeliverWebhook": {"delivery_id", "gen"},
    "PlanFanout": {"batch_id", "gen"},
    "FanoutChunk": {"batch_id", "chunk"},
    "CheckBatch": {"batch_id", "gen", "seq"},
    "EmitItemEvents": {"batch_id", "completion", "start"},
    "Dispatch": {"pool", "window"},  # new with issue 13: no earlier worker receives it
    # New with issue 23: the api may enqueue them before the worker is rolled out; the queue
    # retries their 404 until it is.
    "CancelItems": {"batch_id", "start", "seq"},
    "RetryItems": {"batch_id", "gen", "start", "seq"},  # new in issue 23: its first body
    "RefreshBatch": {"batch_id"},
    "SubmitModelBatch": {"mb", "gen"},  # new in issue 26: only the worker (the gatherer) creates them
    "PollModelBatch": {"mb", "seq"},
}


@pytest.mark.parametrize("task", KINDS, ids=lambda t: type(t).__name__)
def test_bodies_keep_the_fields_the_previous_worker_accepts(task):
    assert set(json.loads(task.model_dump_json())) == PREVIOUS_BODIES[type(task).__name__]


@pytest.mark.parametrize("task", KINDS, ids=lambda t: type(t).__name__)
def test_every_task_kind_has_a_worker_route(task):
    routes = {rule.rule for rule in worker_app().url_map.iter_rules() if "POST" in (rule.methods or ())}
    assert type(task).route in routes


def test_every_worker_task_route_has_a_task_kind():
    routes = {r.rule for r in worker_app().url_map.iter_rules() if r.rule.startswith("/tasks/")}
    assert routes == {type(t).route for t in KINDS} | {tasks.Sweep.route, tasks.Reconcile.route}


@pytest.mark.parametrize("task", KINDS, ids=lambda t: type(t).__name__)
def test_names_are_deterministic_and_differ_by_every_field(task):
    fields = {name: getattr(task, name) for name in type(task).model_fields}
    assert type(task)(**fields).task_id() == task.task_id()
    for field, value in fields.items():
        changed = value + 1 if isinstance(value, int) else value + "x"
        assert task.model_copy(update={field: changed}).task_id() != task.task_id(), field


def test_task_names_are_unique_across_kinds_of_one_batch():
    names = [t.task_id() for t in KINDS if hasattr(t, "batch_id")]
    assert len(names) == len(set(names))


def test_the_sweep_tag_names_a_fresh_chain_but_is_not_sent():
    tagged = tasks.EmitItemEvents(batch_id="bat_1", completion=1, tag="-s42")
    assert tagged.task_id() == "bat_1-items-1-0-s42"
    assert "tag" not in tagged.model_dump_json()


def test_queues_and_deadlines_come_from_settings():
    s = Settings(
        generation_queue="g", webhook_queue="w", fanout_queue="f", dispatch_queue="d", webhook_timeout_s=7
    )
    assert tasks.Generate(job_id="gen_1").queue(s) == "g"
    assert tasks.DeliverWebhook(delivery_id="msg_1").queue(s) == "w"
    assert {
        t.queue(s) for t in KINDS if not isinstance(t, tasks.Generate | tasks.DeliverWebhook | tasks.Dispatch)
    } == {"f"}
    assert tasks.Dispatch(pool="g", window=1).queue(s) == "d"
    assert tasks.DeliverWebhook(delivery_id="msg_1").deadline_s(s) == 37
    assert tasks.Generate(job_id="gen_1").deadline_s(s) == s.task_dispatch_deadline_s


def test_a_body_with_an_unknown_field_is_refused():
    with pytest.raises(pydantic.ValidationError):
        tasks.Generate.model_validate({"job_id": "gen_1", "jobid": "gen_2"})


def test_a_cancel_page_run_again_from_the_same_start_is_a_new_task():
    # A page that lost a race looks at the same start again: with the start alone in its name the
    # chain stopped at ALREADY_EXISTS (a 100,000-item cancel canceled 478 items and no more).
    first, again = (
        tasks.CancelItems(batch_id="bat_1", start=0),
        tasks.CancelItems(batch_id="bat_1", start=0, seq=1),
    )
    assert first.task_id() != again.task_id()
