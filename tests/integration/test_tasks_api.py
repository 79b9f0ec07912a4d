"""The Cloud Tasks emulator's RPC surface: every method, pagination, and the errors bad calls get."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2

from lote_local import queue_yaml
from lote_local.stack import Stack
from tests.support import add_task, make_queue

LATER = dt.timedelta(hours=1)
TOO_FAR = dt.timedelta(days=31)


def test_queues_from_queue_yaml_are_created_at_start(stack: Stack, tasks_client):
    parent = f"projects/{stack.config.project_id}/locations/{stack.config.location}"
    queues = {q.name.rsplit("/", 1)[1]: q for q in tasks_client.list_queues(parent=parent)}
    specs = queue_yaml.load(stack.config.queue_yaml)
    assert set(queues) == {spec.name for spec in specs}
    for spec in specs:
        queue = queues[spec.name]
        assert queue.rate_limits.max_dispatches_per_second == spec.rate_per_s
        assert queue.rate_limits.max_burst_size == spec.bucket_size
        assert queue.rate_limits.max_concurrent_dispatches == spec.max_concurrent
        assert queue.retry_config.max_attempts == spec.max_attempts
        assert queue.retry_config.min_backoff.total_seconds() == spec.min_backoff_s
        assert queue.retry_config.max_backoff.total_seconds() == spec.max_backoff_s
        assert queue.retry_config.max_doublings == spec.max_doublings
        assert queue.retry_config.max_retry_duration.total_seconds() == spec.max_retry_duration_s


def test_queue_lifecycle(tasks_client, parent):
    names = [make_queue(tasks_client, parent, name=f"q{i}") for i in range(3)]
    assert tasks_client.get_queue(name=names[0]).state == tasks_v2.Queue.State.RUNNING
    page = tasks_client.list_queues(request={"parent": parent, "page_size": 2})
    assert [q.name for q in page] == names  # the pager follows next_page_token
    tasks_client.pause_queue(name=names[1])
    paused = tasks_client.list_queues(request={"parent": parent, "filter": "state: PAUSED"})
    assert [q.name for q in paused] == [names[1]]
    add_task(tasks_client, names[2], "http://127.0.0.1:9/", schedule_time=dt.datetime.now(dt.UTC) + LATER)
    purged = tasks_client.purge_queue(name=names[2])
    assert purged.purge_time is not None
    assert list(tasks_client.list_tasks(parent=names[2])) == []
    tasks_client.delete_queue(name=names[0])
    with pytest.raises(exceptions.NotFound):
        tasks_client.get_queue(name=names[0])
    with pytest.raises(exceptions.FailedPrecondition):
        make_queue(tasks_client, parent, name="q0")  # a deleted name cannot be reused


def test_update_queue_creates_a_missing_queue(tasks_client, parent):
    queue = tasks_v2.Queue(name=f"{parent}/queues/made-by-update")
    created = tasks_client.update_queue(queue=queue)
    assert created.rate_limits.max_dispatches_per_second == 500  # Cloud Tasks' default
    assert created.retry_config.max_attempts == 100


def test_task_views_listing_and_deletion(tasks_client, parent):
    queue = make_queue(tasks_client, parent)
    later = dt.datetime.now(dt.UTC) + LATER
    for i in range(5):
        add_task(
            tasks_client, queue, "http://127.0.0.1:9/", name=f"t{i}", body=b'{"i": 1}', schedule_time=later
        )
    basic = tasks_client.get_task(name=f"{queue}/tasks/t0")
    full = tasks_client.get_task(request={"name": f"{queue}/tasks/t0", "response_view": "FULL"})
    assert basic.http_request.body == b"" and basic.view == tasks_v2.Task.View.BASIC
    assert full.http_request.body == b'{"i": 1}'
    assert full.dispatch_deadline.total_seconds() == 600  # the default for HTTP targets
    listed = tasks_client.list_tasks(request={"parent": queue, "page_size": 2})
    assert sorted(t.name.rsplit("/", 1)[1] for t in listed) == ["t0", "t1", "t2", "t3", "t4"]
    tasks_client.delete_task(name=f"{queue}/tasks/t3")
    with pytest.raises(exceptions.NotFound):
        tasks_client.get_task(name=f"{queue}/tasks/t3")
    generated = add_task(tasks_client, queue, "http://127.0.0.1:9/", schedule_time=later)
    assert generated.name.startswith(f"{queue}/tasks/")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c, p, q: c.list_queues(parent="projects//locations/x"), exceptions.InvalidArgument),
        (lambda c, p, q: c.get_queue(name=f"{p}/queues/bad_name!"), exceptions.InvalidArgument),
        (lambda c, p, q: c.get_queue(name=f"{p}/queues/missing"), exceptions.NotFound),
        (lambda c, p, q: make_queue(c, p, name="fast", rate=501), exceptions.InvalidArgument),
        (lambda c, p, q: make_queue(c, p, name="wide", concurrent=5001), exceptions.InvalidArgument),
        (lambda c, p, q: make_queue(c, p, name="q"), exceptions.AlreadyExists),
        (lambda c, p, q: add_task(c, f"{p}/queues/missing", "http://x/"), exceptions.NotFound),
        (lambda c, p, q: add_task(c, q, "ftp://x/"), exceptions.InvalidArgument),
        (lambda c, p, q: c.create_task(parent=q, task=tasks_v2.Task()), exceptions.InvalidArgument),
        (lambda c, p, q: add_task(c, q, "http://x/", dispatch_deadline=dt.timedelta(seconds=5)),
         exceptions.InvalidArgument),
        (lambda c, p, q: add_task(c, q, "http://x/", schedule_time=dt.datetime.now(dt.UTC) + TOO_FAR),
         exceptions.InvalidArgument),
        (lambda c, p, q: add_task(c, q, "http://x/", body=b"x" * (1024 * 1024 + 1)),
         exceptions.InvalidArgument),
        (lambda c, p, q: c.create_task(parent=q, task=tasks_v2.Task(
            name=f"{p}/queues/other/tasks/t", http_request=tasks_v2.HttpRequest(url="http://x/"))),
         exceptions.InvalidArgument),
        (lambda c, p, q: c.create_task(parent=q, task=tasks_v2.Task(
            name=f"{q}/tasks/has space", http_request=tasks_v2.HttpRequest(url="http://x/"))),
         exceptions.InvalidArgument),
        (lambda c, p, q: list(c.list_tasks(request={"parent": q, "page_token": "nonsense"})),
         exceptions.InvalidArgument),
        (lambda c, p, q: list(c.list_queues(request={"parent": p, "filter": "name: x"})),
         exceptions.InvalidArgument),
        (lambda c, p, q: c.get_task(name=f"{q}/tasks/nope"), exceptions.NotFound),
        (lambda c, p, q: c.run_task(name=f"{q}/tasks/nope"), exceptions.NotFound),
        (lambda c, p, q: c.delete_task(name=f"{q}/tasks/nope"), exceptions.NotFound),
    ],
)  # fmt: skip
def test_bad_calls_get_the_status_cloud_tasks_gives(tasks_client, parent, call, error):
    queue = make_queue(tasks_client, parent)
    with pytest.raises(error):
        call(tasks_client, parent, queue)
    assert tasks_client.get_queue(name=queue).name == queue  # and the emulator keeps serving


def test_unimplemented_rpcs_answer_unimplemented(stack: Stack, parent):
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.config.tasks_port}")
    call = channel.unary_unary("/google.cloud.tasks.v2.CloudTasks/GetIamPolicy")
    with pytest.raises(grpc.RpcError) as caught:
        call(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
