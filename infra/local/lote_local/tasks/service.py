"""gRPC handlers for google.cloud.tasks.v2.CloudTasks (and v2beta3 queue stats) over the engine."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.cloud import tasks_v2, tasks_v2beta3
from google.protobuf import empty_pb2

from lote_local.tasks.engine import Emulator
from lote_local.tasks.rules import RpcError, invalid
from lote_local.tasks.store import (
    PAUSED,
    RUNNING,
    queue_message,
    queue_message_v2beta3,
    task_message,
)

log = logging.getLogger("lote.tasks")
T = TypeVar("T")

V2 = "google.cloud.tasks.v2.CloudTasks"
V2BETA3 = "google.cloud.tasks.v2beta3.CloudTasks"


def _page(items: Sequence[T], page_size: int, token: str, maximum: int) -> tuple[Sequence[T], str]:
    """One page of `items` and the token of the next (empty at the end)."""
    if page_size < 0:
        raise invalid("page_size must not be negative")
    size = min(page_size or maximum, maximum)
    try:
        start = int(token) if token else 0
    except ValueError:
        raise invalid(f"page_token {token!r} is not valid") from None
    if start < 0 or start > len(items):
        raise invalid(f"page_token {token!r} is not valid")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


def _state_filter(text: str) -> str:
    """`state: PAUSED` style filters for ListQueues; the only filter Cloud Tasks documents."""
    if not text.strip():
        return ""
    key, _, value = text.partition(":")
    if key.strip() != "state" or value.strip() not in ("RUNNING", "PAUSED", "DISABLED"):
        raise invalid(f"filter {text!r} is not supported; use `state: RUNNING|PAUSED`")
    return value.strip()


class CloudTasksService:
    """The v2 RPCs; each takes the proto-plus request and returns the proto-plus response."""

    def __init__(self, engine: Emulator) -> None:
        self.engine = engine

    def _queue(self, record: Any) -> tasks_v2.Queue:
        with self.engine.locked():
            return queue_message(record, time.time())

    def create_queue(self, req: tasks_v2.CreateQueueRequest) -> tasks_v2.Queue:
        return self._queue(self.engine.create_queue(req.parent, req.queue))

    def update_queue(self, req: tasks_v2.UpdateQueueRequest) -> tasks_v2.Queue:
        paths = list(req.update_mask.paths) if "update_mask" in req else []
        return self._queue(self.engine.update_queue(req.queue, paths))

    def get_queue(self, req: tasks_v2.GetQueueRequest) -> tasks_v2.Queue:
        with self.engine.locked():
            return queue_message(self.engine.queue(req.name), time.time())

    def list_queues(self, req: tasks_v2.ListQueuesRequest) -> tasks_v2.ListQueuesResponse:
        found = self.engine.list_queues(req.parent, _state_filter(req.filter))
        page, token = _page(found, req.page_size, req.page_token, 9800)
        with self.engine.locked():
            now = time.time()
            return tasks_v2.ListQueuesResponse(
                queues=[queue_message(q, now) for q in page], next_page_token=token
            )

    def delete_queue(self, req: tasks_v2.DeleteQueueRequest) -> empty_pb2.Empty:
        self.engine.delete_queue(req.name)
        return empty_pb2.Empty()

    def purge_queue(self, req: tasks_v2.PurgeQueueRequest) -> tasks_v2.Queue:
        return self._queue(self.engine.purge_queue(req.name))

    def pause_queue(self, req: tasks_v2.PauseQueueRequest) -> tasks_v2.Queue:
        return self._queue(self.engine.set_state(req.name, PAUSED))

    def resume_queue(self, req: tasks_v2.ResumeQueueRequest) -> tasks_v2.Queue:
        return self._queue(self.engine.set_state(req.name, RUNNING))

    def create_task(self, req: tasks_v2.CreateTaskRequest) -> tasks_v2.Task:
        record = self.engine.create_task(req.parent, req.task)
        with self.engine.locked():
            return task_message(record, req.response_view)

    def get_task(self, req: tasks_v2.GetTaskRequest) -> tasks_v2.Task:
        with self.engine.locked():
            return task_message(self.engine.task(req.name), req.response_view)

    def list_tasks(self, req: tasks_v2.ListTasksRequest) -> tasks_v2.ListTasksResponse:
        page, token = _page(self.engine.list_tasks(req.parent), req.page_size, req.page_token, 1000)
        with self.engine.locked():
            tasks = [task_message(t, req.response_view) for t in page]
        return tasks_v2.ListTasksResponse(tasks=tasks, next_page_token=token)

    def delete_task(self, req: tasks_v2.DeleteTaskRequest) -> empty_pb2.Empty:
        self.engine.delete_task(req.name)
        return empty_pb2.Empty()

    def run_task(self, req: tasks_v2.RunTaskRequest) -> tasks_v2.Task:
        record = self.engine.run_task(req.name)
        with self.engine.locked():
            return task_message(record, req.response_view)

    # v2beta3: the only API version whose Queue carries live QueueStats.
    def get_queue_v2beta3(self, req: tasks_v2beta3.GetQueueRequest) -> tasks_v2beta3.Queue:
        stats = _wants_stats(req)
        with self.engine.locked():
            return queue_message_v2beta3(self.engine.queue(req.name), time.time(), stats)

    def list_queues_v2beta3(self, req: tasks_v2beta3.ListQueuesRequest) -> tasks_v2beta3.ListQueuesResponse:
        found = self.engine.list_queues(req.parent, _state_filter(req.filter))
        page, token = _page(found, req.page_size, req.page_token, 9800)
        stats = _wants_stats(req)
        with self.engine.locked():
            now = time.time()
            queues = [queue_message_v2beta3(q, now, stats) for q in page]
        return tasks_v2beta3.ListQueuesResponse(queues=queues, next_page_token=token)


def _wants_stats(req: Any) -> bool:
    return "read_mask" in req and any(p in ("stats", "*") for p in req.read_mask.paths)


def _handler(fn: Callable[[Any], Any], request_type: Any, response_type: Any) -> grpc.RpcMethodHandler:
    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(request)
        except RpcError as exc:
            context.abort(exc.code, exc.message)
        except Exception:
            # The gRPC boundary: a bug becomes INTERNAL with a logged traceback, never a dead server.
            log.exception("emulator bug in %s", fn.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"emulator error in {fn.__name__}")

    serialize = response_type.serialize if hasattr(response_type, "serialize") else None
    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=request_type.deserialize,
        response_serializer=serialize or (lambda message: message.SerializeToString()),
    )


def generic_handlers(service: CloudTasksService) -> list[grpc.GenericRpcHandler]:
    """The method table for grpc.Server.add_generic_rpc_handlers."""
    s, v2, b3 = service, tasks_v2, tasks_v2beta3
    empty = empty_pb2.Empty
    v2_methods = {
        "CreateQueue": _handler(s.create_queue, v2.CreateQueueRequest, v2.Queue),
        "UpdateQueue": _handler(s.update_queue, v2.UpdateQueueRequest, v2.Queue),
        "GetQueue": _handler(s.get_queue, v2.GetQueueRequest, v2.Queue),
        "ListQueues": _handler(s.list_queues, v2.ListQueuesRequest, v2.ListQueuesResponse),
        "DeleteQueue": _handler(s.delete_queue, v2.DeleteQueueRequest, empty),
        "PurgeQueue": _handler(s.purge_queue, v2.PurgeQueueRequest, v2.Queue),
        "PauseQueue": _handler(s.pause_queue, v2.PauseQueueRequest, v2.Queue),
        "ResumeQueue": _handler(s.resume_queue, v2.ResumeQueueRequest, v2.Queue),
        "CreateTask": _handler(s.create_task, v2.CreateTaskRequest, v2.Task),
        "GetTask": _handler(s.get_task, v2.GetTaskRequest, v2.Task),
        "ListTasks": _handler(s.list_tasks, v2.ListTasksRequest, v2.ListTasksResponse),
        "DeleteTask": _handler(s.delete_task, v2.DeleteTaskRequest, empty),
        "RunTask": _handler(s.run_task, v2.RunTaskRequest, v2.Task),
    }
    beta_methods = {
        "GetQueue": _handler(s.get_queue_v2beta3, b3.GetQueueRequest, b3.Queue),
        "ListQueues": _handler(s.list_queues_v2beta3, b3.ListQueuesRequest, b3.ListQueuesResponse),
    }
    return [
        grpc.method_handlers_generic_handler(V2, v2_methods),
        grpc.method_handlers_generic_handler(V2BETA3, beta_methods),
    ]
