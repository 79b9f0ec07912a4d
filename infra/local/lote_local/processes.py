"""Child processes of the local stack: each in its own process group, health-checked, logged, stopped."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lote_local.config import REPO_ROOT


class StackError(RuntimeError):
    """The stack cannot start; the message says what to install or which log to read."""


@dataclass
class Service:
    """One child process and how to tell it is healthy."""

    name: str
    command: list[str]
    health_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None


class Supervisor:
    """Starts services, waits for their health URLs, and stops their whole process groups."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.services: list[Service] = []
        self.stopped = threading.Event()

    def spawn(self, service: Service) -> None:
        """Start a service, its output appended to logs/NAME.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service.log_path = self.log_dir / f"{service.name}.log"
        env = {**os.environ, **service.env}
        with open(service.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%F %T')} {shlex.join(service.command)}\n".encode())
            log.flush()
            # Own process group: stopping it also stops grandchildren (gcloud's java).
            service.process = subprocess.Popen(
                service.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self.services.append(service)

    def wait_healthy(self, services: list[Service], deadline: float) -> None:
        """Return once every service answers 200 on its health URL; StackError if one dies or is late."""
        pending = list(services)
        while pending:
            for service in list(pending):
                assert service.process is not None
                if service.process.poll() is not None:
                    raise StackError(
                        f"{service.name} exited with {service.process.returncode}; {self.tail(service)}"
                    )
                try:
                    with urllib.request.urlopen(service.health_url, timeout=1) as response:  # noqa: S310
                        if response.status == 200:
                            pending.remove(service)
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
            if pending and time.monotonic() > deadline:
                names = ", ".join(s.name for s in pending)
                raise StackError(f"not healthy in time: {names}; see {self.log_dir}")
            if pending:
                time.sleep(0.05)

    def tail(self, service: Service, lines: int = 15) -> str:
        """The last lines of a service's log."""
        if service.log_path is None or not service.log_path.exists():
            return "no log"
        text = service.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"last lines of {service.log_path}:\n" + "\n".join(text)

    def stop_all(self) -> None:
        """Stop every child process group: SIGTERM, then SIGKILL after 5 s."""
        self.stopped.set()
        for service in reversed(self.services):
            if service.process is not None and service.process.poll() is None:
                try:
                    os.killpg(service.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for service in reversed(self.services):
            if service.process is None:
                continue
            try:
                service.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(service.process.pid, signal.SIGKILL)
                service.process.wait()
            # The leader may be gone while its children linger (gcloud's java): sweep the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)
        self.services.clear()

    def watch(self) -> Service | None:
        """Block until a child dies (returns it) or stop_all() is called (returns None)."""
        while not self.stopped.wait(0.5):
            for service in self.services:
                if service.process is not None and service.process.poll() is not None:
                    return service
        return None
