"""Child processes of the local stack: each in its own process group, health-checked, logged, stopped."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lote_local.config import REPO_ROOT
from lote_local.restarts import RestartPolicy


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
    # A function: when it dies a new instance starts, as Cloud Functions would. An emulator is not
    # restartable: its state lives in memory, so its death ends the stack.
    restartable: bool = False
    restarts: int = 0
    fast_crashes: int = 0
    # When this instance first answered its health check; None until then. A crash counts as
    # quick by the time it served, so one that hangs at start and is killed is a quick crash too.
    healthy_at: float | None = None
    # The process Supervisor.kill() ended on purpose: its death is not a crash.
    killed: subprocess.Popen[bytes] | None = None


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Supervisor:
    """Starts services, waits for their health URLs, restarts dead functions, stops process groups."""

    def __init__(
        self,
        log_dir: Path,
        policy: RestartPolicy | None = None,
        health_timeout_s: float = 60.0,
        notify: Callable[[str], None] = _say,
    ) -> None:
        self.log_dir = log_dir
        self.policy = policy or RestartPolicy()
        self.health_timeout_s = health_timeout_s
        self.notify = notify
        self.services: list[Service] = []
        self.stopped = threading.Event()
        # Guards `services` and every process replacement: the watcher thread, kill(), restart()
        # and stop_all() never see a half-replaced service, and nothing starts after a stop.
        self._lock = threading.RLock()
        self._watcher: threading.Thread | None = None

    def spawn(self, service: Service) -> None:
        """Start a service, its output appended to logs/NAME.log."""
        with self._lock:
            self._start(service, "")
            self.services.append(service)

    def _start(self, service: Service, note: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service.log_path = self.log_dir / f"{service.name}.log"
        env = {**os.environ, **service.env}
        with open(service.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%F %T')} {note}{shlex.join(service.command)}\n".encode())
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
        service.healthy_at = None

    def _healthy(self, service: Service) -> bool:
        try:
            with urllib.request.urlopen(service.health_url, timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

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
                if self._healthy(service):
                    service.healthy_at = time.monotonic()
                    pending.remove(service)
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

    def find(self, name: str) -> Service:
        """The running service called `name`; StackError if there is none."""
        with self._lock:
            for service in self.services:
                if service.name == name:
                    return service
        raise StackError(f"no service {name!r}")

    def stop_all(self) -> None:
        """Stop every child process group: SIGTERM, then SIGKILL after 5 s."""
        self.stopped.set()
        with self._lock:
            for service in reversed(self.services):
                if service.process is not None and service.process.poll() is None:
                    try:
                        os.killpg(service.process.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        continue
            for service in reversed(self.services):
                if service.process is not None:
                    self._reap(service.process)
            self.services.clear()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()

    def _reap(self, process: subprocess.Popen[bytes]) -> None:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # The leader may be gone while its children linger (gcloud's java): sweep the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    # --- supervision --------------------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to a service's process group (a chaos test's crash); returns the leader's pid."""
        with self._lock:
            service = self.find(name)
            assert service.process is not None
            service.killed = service.process
            os.killpg(service.process.pid, sig)
            return service.process.pid

    def restart(self, name: str) -> None:
        """Stop a function's process group and start a new instance; returns once it is healthy."""
        with self._lock:
            service = self.find(name)
            if not service.restartable:
                raise StackError(f"{name} is an emulator: restarting it would lose its state")
            old = service.process
            assert old is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(old.pid, signal.SIGTERM)
            self._reap(old)
            self._respawn(service, old, "requested")
        self.wait_healthy([service], time.monotonic() + self.health_timeout_s)

    def _respawn(self, service: Service, dead: subprocess.Popen[bytes], why: str) -> bool:
        """Start `service` again unless the stack is stopping or someone already replaced `dead`."""
        with self._lock:
            if self.stopped.is_set() or service.process is not dead:
                return False
            service.restarts += 1
            line = f"restarted {service.name} ({why}), restart #{service.restarts}"
            self._start(service, line + ": ")
        self.notify(line)
        return True

    def _first_dead(self) -> tuple[Service, subprocess.Popen[bytes]] | None:
        with self._lock:
            for service in self.services:
                if service.process is not None and service.process.poll() is not None:
                    return service, service.process
        return None

    def _await_healthy(self, service: Service, process: subprocess.Popen[bytes]) -> None:
        """Wait for a restarted instance; one that hangs is killed, so the next round counts a crash."""
        deadline = time.monotonic() + self.health_timeout_s
        while not self.stopped.is_set() and process.poll() is None:
            if self._healthy(service):
                service.healthy_at = time.monotonic()
                return
            if time.monotonic() > deadline:
                self.notify(f"{service.name} not healthy in {self.health_timeout_s:g}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                return
            self.stopped.wait(0.05)

    def supervise(self) -> str | None:
        """Restart dead functions; returns None after stop_all(), or why the stack must stop."""
        while not self.stopped.wait(0.1):
            found = self._first_dead()
            if found is None:
                continue
            service, dead = found
            if not service.restartable:
                return f"{service.name} exited with {dead.returncode}; {self.tail(service)}"
            if service.killed is dead:  # on purpose: come back at once, and it is no crash
                delay: float | None = 0.0
            else:
                served = service.healthy_at
                uptime = 0.0 if served is None else time.monotonic() - served
                service.fast_crashes, delay = self.policy.after_crash(service.fast_crashes, uptime)
            if delay is None:
                return (
                    f"{service.name} crashed {service.fast_crashes} times in a row, each within "
                    f"{self.policy.fast_s:g}s of starting; gave up; see {service.log_path}\n"
                    + self.tail(service)
                )
            if self.stopped.wait(delay):
                return None
            with contextlib.suppress(ProcessLookupError):
                # Its group may outlive it (gunicorn's worker holding the port): end it first.
                os.killpg(dead.pid, signal.SIGKILL)
            if self._respawn(service, dead, f"exit {dead.returncode}"):
                assert service.process is not None
                self._await_healthy(service, service.process)
        return None

    def supervise_in_background(self, on_failure: Callable[[str], None]) -> None:
        """Run supervise() in a daemon thread; `on_failure(why)` runs there if it gives up."""

        def run() -> None:
            failure = self.supervise()
            if failure is not None:
                on_failure(failure)

        with self._lock:
            if self._watcher is not None:
                raise StackError("already supervised")
            self._watcher = threading.Thread(target=run, name="lote-supervisor", daemon=True)
            self._watcher.start()
