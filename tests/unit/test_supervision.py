"""The local stack's supervision: dead functions come back, crash loops and emulator deaths end it."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lote_local.config import PICK_FROM, ephemeral_low, free_port
from lote_local.processes import Service, StackError, Supervisor
from lote_local.restarts import RestartPolicy
from tests.support import answers

QUICK = RestartPolicy(fast_s=10, max_fast=3, first_backoff_s=0.01, max_backoff_s=0.02)


def test_a_crash_after_a_good_run_restarts_at_once_and_forgets_earlier_crashes():
    assert RestartPolicy().after_crash(fast_crashes=3, uptime_s=60) == (0, 0.0)


def test_quick_crashes_back_off_doubling_then_give_up():
    policy = RestartPolicy(fast_s=10, max_fast=5, first_backoff_s=0.5, max_backoff_s=3)
    fast, delays = 0, []
    for _ in range(4):
        fast, delay = policy.after_crash(fast, uptime_s=1)
        delays.append(delay)
    assert delays == [0.5, 1.0, 2.0, 3.0]
    assert policy.after_crash(fast, uptime_s=1) == (5, None)


@pytest.fixture
def notices() -> list[str]:
    """What the supervisor told the launcher's terminal."""
    return []


@pytest.fixture
def procs(tmp_path: Path, notices: list[str]) -> Iterator[Supervisor]:
    """A supervisor with a quick policy."""
    supervisor = Supervisor(tmp_path / "logs", policy=QUICK, health_timeout_s=20, notify=notices.append)
    yield supervisor
    supervisor.stop_all()


def _http_server(name: str = "web") -> Service:
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    return Service(name, command, f"http://127.0.0.1:{port}/", {}, restartable=True)


def test_a_killed_function_is_restarted_in_the_background_and_logged(procs: Supervisor, notices: list[str]):
    service = _http_server()
    procs.spawn(service)
    procs.wait_healthy([service], time.monotonic() + 20)
    failures: list[str] = []
    procs.supervise_in_background(failures.append)
    old_pid = procs.kill("web", signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not (service.restarts == 1 and answers(service.health_url)):
        assert time.monotonic() < deadline, procs.tail(service)
        time.sleep(0.02)
    assert service.process is not None and service.process.pid != old_pid
    assert notices == ["restarted web (exit -9), restart #1"]
    assert service.log_path is not None
    assert "restarted web (exit -9), restart #1" in service.log_path.read_text()
    assert service.fast_crashes == 0  # killed on purpose: no crash
    procs.restart("web")
    assert service.restarts == 2 and answers(service.health_url)
    procs.stop_all()
    assert failures == [] and service.process.poll() is not None


def test_a_function_that_crashes_at_start_is_given_up_naming_its_log(procs: Supervisor):
    command = [sys.executable, "-c", "raise SystemExit('boom at import')"]
    service = Service("broken", command, f"http://127.0.0.1:{free_port()}/", {}, restartable=True)
    procs.spawn(service)
    why = procs.supervise()
    assert why is not None
    assert why.startswith("broken crashed 3 times in a row")
    assert f"see {service.log_path}" in why and "boom at import" in why
    assert service.restarts == 2


def test_an_emulator_death_ends_supervision(procs: Supervisor):
    emulator = _http_server("firestore")
    emulator.restartable = False
    procs.spawn(emulator)
    procs.wait_healthy([emulator], time.monotonic() + 20)
    procs.kill("firestore")
    why = procs.supervise()
    assert why is not None and why.startswith("firestore exited with -9")
    with pytest.raises(StackError, match="emulator"):
        procs.restart("firestore")


def test_an_instance_that_hangs_at_start_counts_as_a_quick_crash(tmp_path: Path):
    # The first instance exits at once; every later one hangs without answering its health check
    # and is killed. Killed after longer than `fast_s`, it must still count as a quick crash (it
    # never served), or the supervisor restarts it forever.
    marker = tmp_path / "started-once"
    script = f"import pathlib, time, sys\nm = pathlib.Path({str(marker)!r})\nif not m.exists():\n" \
             "    m.touch(); sys.exit(3)\ntime.sleep(60)\n"  # fmt: skip
    policy = RestartPolicy(fast_s=0.2, max_fast=3, first_backoff_s=0.01, max_backoff_s=0.02)
    supervisor = Supervisor(tmp_path / "logs", policy=policy, health_timeout_s=0.4, notify=lambda _: None)
    service = Service("hangs", [sys.executable, "-c", script], f"http://127.0.0.1:{free_port()}/", {},
                      restartable=True)  # fmt: skip
    supervisor.spawn(service)
    result: list[str | None] = []
    watcher = threading.Thread(target=lambda: result.append(supervisor.supervise()), daemon=True)
    watcher.start()
    watcher.join(timeout=20)
    try:
        assert result, "still restarting an instance that never became healthy"
        assert result[0] is not None and result[0].startswith("hangs crashed 3 times in a row")
    finally:
        supervisor.stop_all()


def test_ports_are_picked_below_the_ephemeral_range_so_no_bind_zero_can_take_them():
    # A bind(0) anywhere (the Firestore emulator's websocket server did) may be handed a port that
    # free_port() picked from the ephemeral range and released; below the range that cannot happen.
    picked = {free_port() for _ in range(40)}
    assert len(picked) == 40 and max(picked) < ephemeral_low() and min(picked) >= PICK_FROM
