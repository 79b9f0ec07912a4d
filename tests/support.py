"""Test helpers: a scriptable HTTP target that records every request it gets."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hit:
    """One request the target received."""

    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    index: int
    finished_at: float = 0.0


@dataclass
class Reply:
    """What the target answers: status, headers, and how long it holds the request first."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold_s: float = 0.0


Script = Callable[[Hit], Reply]


class Target:
    """An HTTP server on 127.0.0.1 whose answers a test scripts; waits are event-driven."""

    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or (lambda hit: Reply())
        self.hits: list[Hit] = []
        self.active = 0
        self.max_active = 0
        self._cond = threading.Condition()
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with target._cond:
                    hit = Hit(
                        time.time(), self.command, self.path, dict(self.headers), body, len(target.hits)
                    )
                    target.hits.append(hit)
                    target.active += 1
                    target.max_active = max(target.max_active, target.active)
                reply = target.script(hit)
                if reply.hold_s:
                    time.sleep(reply.hold_s)
                with target._cond:
                    target.active -= 1
                    hit.finished_at = time.time()
                    target._cond.notify_all()
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the dispatcher gave up (deadline); that is what the test provoked

            do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = _BurstServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL of the target."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Hit]:
        """Block until `count` requests have been answered; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for h in self.hits if h.finished_at) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"target got {len(self.hits)} requests, wanted {count}")
                self._cond.wait(remaining)
            return list(self.hits)

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


class _BurstServer(ThreadingHTTPServer):
    """A receiver that takes a queue's whole burst at once: with the standard listen backlog of 5,
    a burst of 20 connections on a busy machine can find the backlog full."""

    request_queue_size = 256


def make_queue(
    client: object,
    parent: str,
    name: str = "q",
    *,
    rate: float = 100.0,
    burst: int = 0,
    concurrent: int = 100,
    retry: dict[str, object] | None = None,
) -> str:
    """Create a queue through the real client; returns its name."""
    from google.cloud import tasks_v2

    queue = tasks_v2.Queue(
        name=f"{parent}/queues/{name}",
        rate_limits=tasks_v2.RateLimits(
            max_dispatches_per_second=rate, max_burst_size=burst, max_concurrent_dispatches=concurrent
        ),
        retry_config=tasks_v2.RetryConfig(**(retry or {"max_attempts": 1})),
    )
    return str(client.create_queue(parent=parent, queue=queue).name)  # type: ignore[attr-defined]


def add_task(client: object, queue: str, url: str, name: str | None = None, **fields: object) -> object:
    """Create an HTTP task through the real client."""
    from google.cloud import tasks_v2

    request = tasks_v2.HttpRequest(
        url=url,
        body=fields.pop("body", b"{}"),
        headers=fields.pop("headers", {"Content-Type": "application/json"}),
    )
    if "oidc" in fields:
        request.oidc_token = fields.pop("oidc")  # type: ignore[assignment]
    task = tasks_v2.Task(http_request=request, **fields)
    if name:
        task.name = f"{queue}/tasks/{name}"
    return client.create_task(parent=queue, task=task)  # type: ignore[attr-defined]


def answers(url: str) -> bool:
    """Whether `url` answers 200 now (a health check)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


class DroppingProxy:
    """An HTTP proxy to `upstream` that forwards every request, but for the first `drops` requests
    that `match` it reads the upstream's answer and then closes the client's connection without
    a byte: the server did the work and the client never heard (a connection lost on the way back).
    With `cut_at`, the answer's headers and its first `cut_at` bytes get through (a stream broken
    midway)."""

    def __init__(
        self, upstream: str, match: Callable[[str, str], bool], drops: int = 1, cut_at: int | None = None
    ) -> None:
        import http.client
        from urllib.parse import urlsplit

        self.dropped: list[str] = []
        self.forwarded: list[str] = []
        parts = urlsplit(upstream)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                connection = http.client.HTTPConnection(host, port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                connection.close()
                proxy.forwarded.append(f"{self.command} {self.path} {answer.status}")
                cut = match(self.command, self.path) and len(proxy.dropped) < drops
                if cut:
                    proxy.dropped.append(f"{self.command} {self.path} {answer.status}")
                    self.close_connection = True  # the client sees the connection end
                    if cut_at is None:
                        return  # nothing written
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[:cut_at] if cut else payload)

            do_GET = do_POST = do_PUT = _relay

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
