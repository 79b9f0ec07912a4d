"""The chaos run's actors: a webhook receiver, clients that retry one Idempotency-Key until answered,
the repair sweep on a timer (Cloud Scheduler's part), and forced duplicate task deliveries."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from lote import repair
from lote.services import Services

log = logging.getLogger("bench.chaos")
# What the sweep did that only the sweep could do (the rest of its counters are bookkeeping).
REPAIRS = ("enqueued", "requeued", "lost_tasks", "abandoned", "fanouts_resumed", "webhooks_enqueued",
           "webhooks_requeued", "webhooks_failed")  # fmt: skip


class Receiver:
    """A tenant's webhook endpoint: counts POSTs per `webhook-id` and answers 204."""

    def __init__(self) -> None:
        self.posts: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.posts[self.headers.get("webhook-id", "")] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """Where the events go."""
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def snapshot(self) -> Counter[str]:
        """POSTs per event id so far."""
        with self.lock:
            return Counter(self.posts)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Single:
    """One client's generation: its key, its body, and how getting an answer went."""

    key: str
    body: dict[str, Any]
    attempts: int = 0
    connection_errors: int = 0
    server_errors: int = 0
    status: int | None = None
    job_id: str | None = None


@dataclass
class Clients:
    """Threads that submit singles at a steady pace, each retrying the same Idempotency-Key on
    connection errors, 5xx and 429 until the api answers 202 or another 4xx."""

    api_url: str
    api_key: str
    singles: list[Single]
    threads: int
    over_s: float
    give_up_s: float = 300.0
    stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        """Begin submitting."""
        interval = self.over_s * self.threads / max(1, len(self.singles))
        for n in range(self.threads):
            share = self.singles[n :: self.threads]
            thread = threading.Thread(target=self._run, args=(share, interval), daemon=True)
            thread.start()
            self._workers.append(thread)

    def active(self) -> bool:
        """Some client still has a single to submit."""
        return any(thread.is_alive() for thread in self._workers)

    def join(self, timeout: float) -> None:
        """Wait for every client to finish."""
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, share: list[Single], interval: float) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.api_key}"
        for single in share:
            self._submit(http, single)
            if self.stop.wait(interval):  # pacing, so submissions overlap the kills
                return

    def _submit(self, http: requests.Session, single: Single) -> None:
        deadline = time.monotonic() + self.give_up_s
        backoff = 0.1
        while time.monotonic() < deadline and not self.stop.is_set():
            single.attempts += 1
            try:
                response = http.post(self.api_url + "/v1/generations", json=single.body, timeout=30,
                                     headers={"Idempotency-Key": single.key})  # fmt: skip
            except (requests.ConnectionError, requests.Timeout):
                single.connection_errors += 1
            else:
                if response.status_code < 500 and response.status_code != 429:
                    single.status = response.status_code
                    single.job_id = response.json().get("id") if response.status_code == 202 else None
                    return
                single.server_errors += 1
            self.stop.wait(backoff)
            backoff = min(2.0, backoff * 2)


class Sweeper:
    """Runs the repair sweep every `every_s` in a thread, as Cloud Scheduler would, and totals it."""

    def __init__(self, services: Services, every_s: float) -> None:
        self.services = services
        self.every_s = every_s
        self.totals: Counter[str] = Counter()
        self.passes = 0
        self.errors: Counter[str] = Counter()  # failed passes, by exception
        self.last_repair_at: float | None = None
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-sweeper", daemon=True)

    def start(self) -> None:
        """Begin sweeping."""
        self._thread.start()

    def close(self) -> None:
        """Stop after the current pass."""
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                done = repair.sweep(self.services)
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                log.warning("sweep failed: %s", exc, exc_info=True)
                continue
            self.passes += 1
            self.totals.update({key: value for key, value in done.items() if value})
            if any(done.get(key) for key in REPAIRS):
                self.last_repair_at = time.monotonic()

    def repairs(self) -> dict[str, int]:
        """What only the sweep did, by kind."""
        return {key: self.totals[key] for key in REPAIRS if self.totals[key]}


def tasks_client(host: str) -> Any:
    """The unmodified google-cloud-tasks client over an insecure channel to the emulator."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(host)))


def task_names(client: Any, queue: str, contains: str = "") -> list[str]:
    """Names of the tasks in a queue now (optionally only those whose name contains `contains`)."""
    return [
        task.name
        for task in client.list_tasks(request={"parent": queue, "page_size": 1000})
        if contains in task.name
    ]


def force_runs(client: Any, names: list[str]) -> tuple[int, int]:
    """RunTask twice at once on each task: a duplicate delivery, on purpose. Returns (tasks that
    were run at least once, RunTask calls accepted); a task finished meanwhile answers NOT_FOUND."""
    from google.api_core.exceptions import NotFound

    def run(name: str) -> str | None:
        try:
            client.run_task(name=name)
        except NotFound:
            return None
        return name

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = [name for name in pool.map(run, [n for name in names for n in (name, name)]) if name]
    return len(set(accepted)), len(accepted)


def sample(names: list[str], count: int, seed: int) -> list[str]:
    """Up to `count` of `names`, chosen at random (reproducibly)."""
    return random.Random(seed).sample(names, min(count, len(names)))
