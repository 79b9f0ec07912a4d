"""The Cloud Tasks emulator's dispatch rules, each measured against a real HTTP target."""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import threading
import time

import google.auth.transport.requests
import pytest
import requests
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.oauth2 import id_token
from google.protobuf import field_mask_pb2

from lote_local.stack import Stack
from tests.support import Hit, Reply, Target, add_task, make_queue


def test_token_bucket_paces_60_tasks_on_10_per_second_in_6_seconds(tasks_client, parent, target):
    queue = make_queue(tasks_client, parent, rate=10, burst=1, concurrent=100)
    started = time.time()
    for _ in range(60):
        add_task(tasks_client, queue, target.url)
    hits = target.wait_for(60, timeout=20)
    elapsed = hits[-1].at - started
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    assert 6.0 * 0.9 <= elapsed <= 6.0 * 1.1, elapsed
    assert statistics.median(gaps) == pytest.approx(0.1, abs=0.02)


def test_stats_report_the_rate_achieved_beside_the_rate_allowed(tasks_client, parent, target, stack: Stack):
    # One attempt each: a burst on a busy machine once lost an attempt to a pooled connection
    # the receiver was closing (the emulator now opens one per attempt).
    queue = make_queue(tasks_client, parent, rate=100, burst=100, concurrent=100)
    for _ in range(20):
        add_task(tasks_client, queue, target.url)
    target.wait_for(20)
    # The target has answered; the emulator counts an attempt once the answer is back with it.
    deadline = time.monotonic() + 10
    while True:
        stats = requests.get(stack.url(stack.config.tasks_http_port) + "/stats", timeout=5).json()
        stats = stats["queues"][queue]
        if (stats["tasks"], stats["in_flight"]) == (0, 0) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert stats["allowed_per_s"] == 100  # QueueStats' effective_execution_rate: a maximum
    assert stats["achieved_per_s"] == 2.0  # 20 answered in the last 10 s: what actually ran


def test_bucket_size_is_the_burst(tasks_client, parent, target):
    queue = make_queue(tasks_client, parent, rate=2, burst=5)
    started = time.time()
    for _ in range(7):
        add_task(tasks_client, queue, target.url)
    hits = target.wait_for(7, timeout=10)
    assert all(hit.at - started < 0.4 for hit in hits[:5])  # the full bucket goes at once
    # Then the rate, 2/s, counted from when the bucket started to empty (the first dispatch): the
    # seven CreateTask calls themselves take a while, so hit 4 may come late on a busy machine.
    assert hits[5].at - hits[0].at == pytest.approx(0.5, abs=0.1)
    assert hits[6].at - hits[5].at == pytest.approx(0.5, abs=0.1)


def test_max_concurrent_requests_is_never_exceeded(tasks_client, tasks_beta, parent):
    target = Target(lambda hit: Reply(hold_s=0.3))
    try:
        queue = make_queue(tasks_client, parent, rate=200, burst=100, concurrent=3)
        for _ in range(15):
            add_task(tasks_client, queue, target.url)
        target.wait_for(1)
        stats = tasks_beta.get_queue(request={"name": queue, "read_mask": {"paths": ["stats"]}}).stats
        target.wait_for(15)
        assert target.max_active == 3
        assert stats.concurrent_dispatches_count <= 3
    finally:
        target.close()


def test_retries_follow_the_documented_backoff_then_stop_at_max_attempts(tasks_client, parent):
    target = Target(lambda hit: Reply(500))
    try:
        retry = {"max_attempts": 6, "min_backoff": dt.timedelta(seconds=0.2),
                 "max_backoff": dt.timedelta(seconds=1.0), "max_doublings": 2}  # fmt: skip
        queue = make_queue(tasks_client, parent, retry=retry)
        task = add_task(tasks_client, queue, target.url, name="doomed")
        hits = target.wait_for(6, timeout=15)
        gaps = [b.at - a.finished_at for a, b in itertools.pairwise(hits)]
        # 0.2, doubled twice (0.4, 0.8), then linear by 2^2 × 0.2 = 0.8 → 1.6, capped at 1.0.
        for gap, expected in zip(gaps, [0.2, 0.4, 0.8, 1.0, 1.0], strict=True):
            assert gap == pytest.approx(expected, abs=0.06)
        assert [h.headers["X-CloudTasks-TaskRetryCount"] for h in hits] == ["0", "1", "2", "3", "4", "5"]
        with pytest.raises(exceptions.NotFound):
            _wait_gone(tasks_client, task.name)
            tasks_client.get_task(name=task.name)
        assert len(target.hits) == 6
    finally:
        target.close()


def _wait_gone(client: tasks_v2.CloudTasksClient, name: str, timeout: float = 5.0) -> None:
    """Poll GetTask until NOT_FOUND: the task's removal has no event a client can await."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get_task(name=name)
        except exceptions.NotFound:
            return
        time.sleep(0.02)


def test_retrying_stops_only_when_both_attempt_and_age_limits_are_reached(tasks_client, parent):
    target = Target(lambda hit: Reply(500))
    try:
        half = dt.timedelta(seconds=0.5)
        retry = {"max_attempts": 2, "max_retry_duration": dt.timedelta(seconds=2),
                 "min_backoff": half, "max_backoff": half}  # fmt: skip
        queue = make_queue(tasks_client, parent, retry=retry)
        task = add_task(tasks_client, queue, target.url)
        target.wait_for(5, timeout=10)  # attempts at 0, 0.5, 1.0, 1.5, 2.0 s: 2 attempts were not enough
        _wait_gone(tasks_client, task.name)
        with pytest.raises(exceptions.NotFound):
            tasks_client.get_task(name=task.name)
        assert len(target.hits) == 5
    finally:
        target.close()


def test_a_response_after_the_dispatch_deadline_is_a_failed_attempt(tasks_client, parent):
    target = Target(lambda hit: Reply(200, hold_s=16.5 if hit.index == 0 else 0))
    try:
        retry = {"max_attempts": 3, "min_backoff": dt.timedelta(seconds=0.1)}
        queue = make_queue(tasks_client, parent, retry=retry)
        add_task(tasks_client, queue, target.url, dispatch_deadline=dt.timedelta(seconds=15))
        hits = target.wait_for(2, timeout=40)
        # Deadline (15 s), then the next token: an attempt without an answer throttles the queue to
        # its floor, 100/64 per second, so one token takes 0.64 s (the 0.1 s backoff is shorter).
        assert hits[1].at - hits[0].at == pytest.approx(15.0 + 64 / 100, abs=0.5)
        assert hits[1].headers["X-CloudTasks-TaskRetryCount"] == "1"
        assert hits[1].headers["X-CloudTasks-TaskPreviousResponse"] == "0"  # no response in time
    finally:
        target.close()


def test_retry_after_on_429_holds_the_whole_queue(tasks_client, parent):
    target = Target(lambda hit: Reply(429, {"Retry-After": "1"}) if hit.index == 0 else Reply())
    try:
        retry = {"max_attempts": 5, "min_backoff": dt.timedelta(seconds=0.1)}
        queue = make_queue(tasks_client, parent, rate=50, burst=1, concurrent=1, retry=retry)
        for _ in range(4):
            add_task(tasks_client, queue, target.url)
        hits = target.wait_for(5, timeout=15)
        assert hits[0].headers.get("X-CloudTasks-TaskRetryCount") == "0"
        assert hits[1].at - hits[0].finished_at >= 0.98  # no task of the queue went in that second
    finally:
        target.close()


def test_503_without_retry_after_slows_the_whole_queue(tasks_client, tasks_beta, parent):
    target = Target(lambda hit: Reply(503) if hit.index == 0 else Reply())
    try:
        retry = {"max_attempts": 10, "min_backoff": dt.timedelta(seconds=0.1)}
        queue = make_queue(tasks_client, parent, rate=20, burst=1, concurrent=1, retry=retry)
        for _ in range(30):
            add_task(tasks_client, queue, target.url)
        target.wait_for(1)
        stats = tasks_beta.get_queue(request={"name": queue, "read_mask": {"paths": ["stats"]}}).stats
        assert stats.effective_execution_rate < 20 / 4
        # Every hit up to the first one after the second that follows the 503.
        count = 2
        while (hits := target.wait_for(count))[-1].at <= hits[0].finished_at + 1.0:
            count += 1
        window = [h for h in hits if hits[0].finished_at < h.at <= hits[0].finished_at + 1.0]
        assert len(window) <= 10  # unthrottled, the queue would have sent 20 in that second
    finally:
        tasks_client.purge_queue(name=queue)
        target.close()


def test_a_target_that_does_not_answer_slows_the_whole_queue(tasks_client, tasks_beta, parent):
    # A dead worker used to be retried at full rate, burning every task's attempts in seconds.
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/"  # bound, never listening: refused
        retry = {"max_attempts": 100, "min_backoff": dt.timedelta(seconds=0.1)}
        queue = make_queue(tasks_client, parent, rate=20, burst=1, concurrent=1, retry=retry)
        try:
            for _ in range(20):
                add_task(tasks_client, queue, dead)
            deadline = time.monotonic() + 10
            while True:
                stats = tasks_beta.get_queue(request={"name": queue, "read_mask": {"paths": ["stats"]}}).stats
                if stats.effective_execution_rate < 20 / 4:
                    break
                assert time.monotonic() < deadline, f"never slowed down: {stats.effective_execution_rate}"
                time.sleep(0.05)
        finally:  # else the queue keeps retrying a dead port for the rest of the session
            tasks_client.purge_queue(name=queue)


def test_schedule_time_is_respected_and_reported_as_eta(tasks_client, parent, target):
    queue = make_queue(tasks_client, parent)
    eta = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    add_task(tasks_client, queue, target.url, schedule_time=eta)
    (hit,) = target.wait_for(1, timeout=10)
    assert hit.at >= eta.timestamp()
    assert float(hit.headers["X-CloudTasks-TaskETA"]) == pytest.approx(eta.timestamp(), abs=1e-3)


def test_task_names_deduplicate_while_live_and_after_execution(tasks_client, parent, target):
    queue = make_queue(tasks_client, parent)
    add_task(tasks_client, queue, target.url, name="once")
    with pytest.raises(exceptions.AlreadyExists):
        add_task(tasks_client, queue, target.url, name="once")
    target.wait_for(1)
    _wait_gone(tasks_client, f"{queue}/tasks/once")
    with pytest.raises(exceptions.AlreadyExists):
        add_task(tasks_client, queue, target.url, name="once")
    later = add_task(tasks_client, queue, target.url, name="deleted",
                     schedule_time=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))  # fmt: skip
    tasks_client.delete_task(name=later.name)
    with pytest.raises(exceptions.AlreadyExists):
        add_task(tasks_client, queue, target.url, name="deleted")
    assert len(target.hits) == 1


def test_dispatch_headers_and_oidc_token(stack: Stack, tasks_client, parent):
    target = Target(lambda hit: Reply([500, 404, 200][hit.index]))
    try:
        retry = {"max_attempts": 5, "min_backoff": dt.timedelta(seconds=0.05)}
        queue = make_queue(tasks_client, parent, name="hdrs", retry=retry)
        oidc = tasks_v2.OidcToken(service_account_email="invoker@p.iam.gserviceaccount.com",
                                  audience="https://worker.example")  # fmt: skip
        add_task(tasks_client, queue, target.url + "/tasks", name="h1", oidc=oidc,
                 headers={"Content-Type": "application/json", "X-CloudTasks-TaskName": "spoof"})  # fmt: skip
        hits = target.wait_for(3)
        first, second, third = hits
        assert first.path == "/tasks" and first.method == "POST"
        assert first.headers["X-CloudTasks-QueueName"] == "hdrs"
        assert first.headers["X-CloudTasks-TaskName"] == "h1"
        assert first.headers["User-Agent"] == "Google-Cloud-Tasks"
        assert [h.headers["X-CloudTasks-TaskRetryCount"] for h in hits] == ["0", "1", "2"]
        # 5xx answers never reached execution; the 404 did.
        assert [h.headers["X-CloudTasks-TaskExecutionCount"] for h in hits] == ["0", "0", "1"]
        assert second.headers["X-CloudTasks-TaskPreviousResponse"] == "500"
        certs = f"http://127.0.0.1:{stack.config.tasks_http_port}/oauth2/v1/certs"
        token = third.headers["Authorization"].removeprefix("Bearer ")
        claims = id_token.verify_token(
            token,
            google.auth.transport.requests.Request(),
            audience="https://worker.example",
            certs_url=certs,
        )
        assert claims["iss"] == "https://accounts.google.com"
        assert claims["email"] == "invoker@p.iam.gserviceaccount.com" and claims["email_verified"]
        with pytest.raises(ValueError, match="audience"):
            id_token.verify_token(token, google.auth.transport.requests.Request(), audience="https://other",
                                  certs_url=certs)  # fmt: skip
    finally:
        target.close()


def test_run_task_dispatches_now_even_when_paused(tasks_client, parent, target):
    queue = make_queue(tasks_client, parent)
    tasks_client.pause_queue(name=queue)
    task = add_task(tasks_client, queue, target.url, name="forced")
    tasks_client.run_task(name=task.name)
    (hit,) = target.wait_for(1)
    assert hit.headers["X-CloudTasks-TaskName"] == "forced"
    _wait_gone(tasks_client, task.name)
    with pytest.raises(exceptions.NotFound):
        tasks_client.run_task(name=task.name)  # acknowledged tasks are gone


def test_run_task_on_a_task_in_flight_delivers_it_twice(tasks_client, parent):
    arrived = threading.Event()

    def script(hit: Hit) -> Reply:
        if hit.index == 0:
            arrived.set()
            return Reply(hold_s=0.5)
        return Reply()

    target = Target(script)
    try:
        queue = make_queue(tasks_client, parent)
        task = add_task(tasks_client, queue, target.url, name="dup")
        assert arrived.wait(5)
        tasks_client.run_task(name=task.name)
        hits = target.wait_for(2)
        assert [h.headers["X-CloudTasks-TaskName"] for h in hits] == ["dup", "dup"]
    finally:
        target.close()


def test_pause_holds_and_resume_releases(tasks_client, tasks_beta, parent, target):
    queue = make_queue(tasks_client, parent)
    paused = tasks_client.pause_queue(name=queue)
    assert paused.state == tasks_v2.Queue.State.PAUSED
    for _ in range(3):
        add_task(tasks_client, queue, target.url)
    stats = tasks_beta.get_queue(request={"name": queue, "read_mask": {"paths": ["stats"]}}).stats
    assert stats.tasks_count == 3 and target.hits == []
    assert stats.oldest_estimated_arrival_time.timestamp() <= time.time()
    tasks_client.resume_queue(name=queue)
    target.wait_for(3)
    # The target has answered; the emulator counts an execution once it has read the answer.
    deadline = time.monotonic() + 5
    while True:
        stats = tasks_beta.get_queue(request={"name": queue, "read_mask": {"paths": ["stats"]}}).stats
        if stats.executed_last_minute_count == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert stats.executed_last_minute_count == 3


def test_update_queue_applies_the_mask(tasks_client, parent):
    queue = make_queue(tasks_client, parent, rate=5, concurrent=7)
    change = tasks_v2.Queue(name=queue, rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=42))
    mask = field_mask_pb2.FieldMask(paths=["rate_limits.max_dispatches_per_second"])
    updated = tasks_client.update_queue(queue=change, update_mask=mask)
    assert updated.rate_limits.max_dispatches_per_second == 42
    assert updated.rate_limits.max_concurrent_dispatches == 7
