"""Issue 6: how soon a signed webhook reaches its receiver after the image is finished."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from bench.common import running

EVENTS = 100


class Receiver:
    """Records when each event arrives (wall clock), answering 204."""

    def __init__(self) -> None:
        self.arrivals: dict[str, tuple[float, dict]] = {}
        self.posts = 0
        self.done = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.done:
                    receiver.arrivals[self.headers["webhook-id"]] = (time.time(), json.loads(body))
                    receiver.posts += 1
                    receiver.done.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """Where to send events."""
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def wait(self, count: int, timeout: float) -> None:
        """Until `count` events arrived."""
        deadline = time.monotonic() + timeout
        with self.done:
            while len(self.arrivals) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"only {len(self.arrivals)} of {count} webhooks arrived")
                self.done.wait(left)


def run() -> str:
    """Markdown section with the measurements."""
    receiver = Receiver()
    try:
        with running(model_latency_ms=0) as bench:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {bench.api_key}"
            url = bench.stack.url(bench.stack.config.api_port) + "/v1/generations"
            started = time.monotonic()
            for i in range(EVENTS):
                response = http.post(
                    url, json={"prompt": f"hook {i}", "webhook_url": receiver.url}, timeout=30
                )
                if response.status_code != 202:
                    raise RuntimeError(f"accept failed: {response.text}")
            receiver.wait(EVENTS, 120)
            elapsed = time.monotonic() - started
    finally:
        receiver.server.shutdown()
    lags = [
        (arrived - dt.datetime.fromisoformat(event["data"]["finished_at"]).timestamp()) * 1000
        for arrived, event in receiver.arrivals.values()
    ]
    ordered = sorted(lags)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return "\n".join([
        "## Webhooks (issue 6)",
        "",
        f"{EVENTS} generations with a `webhook_url` (queue.yaml's rates: generation 10/s, webhooks 50/s), "
        "offline model at 0 ms; lag = receipt at a local receiver − the job's `finished_at` (the "
        "commit that produced the event; includes the CreateTask after it and the queue's dispatch).",
        "",
        "| measurement | n | median | p95 |",
        "|---|---:|---:|---:|",
        f"| event lag after the image finished (ms) | {len(lags)} | {statistics.median(lags):.1f} | {p95:.1f} |",
        "",
        f"{len(receiver.arrivals)} distinct events in {receiver.posts} POSTs; the last arrived {elapsed:.1f} s "
        "after the first submission.",
        "",
    ])  # fmt: skip
