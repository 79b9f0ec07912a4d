"""The launcher behind `make dev`: ready line, env file, health, restarts, no orphans after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
import requests

from lote_local.config import REPO_ROOT, StackConfig
from lote_local.stack import Stack, StackError
from tests.integration.conftest import Tenant
from tests.support import answers

REQUIRED_ENV = {
    "FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST", "LOTE_API_URL",
    "LOTE_WORKER_URL", "LOTE_MODEL_BASE_URL", "LOTE_PROJECT_ID", "LOTE_MODE",
}  # fmt: skip


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _function_leader(launcher_pid: int, target: str) -> int:
    """The pid of a function's server process (gunicorn's arbiter), a direct child of the launcher."""
    for pid in _descendants(launcher_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if (
            ppid == launcher_pid
            and b"--target" in argv
            and argv[argv.index(b"--target") + 1] == target.encode()
        ):
            return pid
    raise AssertionError(f"no {target} function under the launcher")


def _await(condition: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Poll `condition()` until it holds; fail with `what()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.05)


def test_launcher_reports_ready_writes_env_restarts_functions_and_leaves_no_orphans(tmp_path: Path):
    config = StackConfig.ephemeral(tmp_path)
    env = {**os.environ, "LOTE_STATE_DIR": str(tmp_path)}
    env.update({f"LOTE_{name.upper()}": str(getattr(config, name)) for name in StackConfig.port_fields()})
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI", "LOTE_USE_VERTEXAI"):
        env.pop(key, None)
    errors = tmp_path / "launcher.err"
    launcher = subprocess.Popen([sys.executable, "-m", "lote_local.stack"], cwd=REPO_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=errors.open("w"), text=True)  # fmt: skip
    try:
        assert launcher.stdout is not None
        first = launcher.stdout.readline()
        assert first.startswith(f"ready: api=http://127.0.0.1:{config.api_port}"), first
        banner = ""
        while "Ctrl-C stops everything" not in banner:
            line = launcher.stdout.readline()
            assert line, banner
            banner += line
        assert "API key: lote_sk_" in banner and "admin token" in banner
        source = f"source {tmp_path / 'local.env'}"
        exported = subprocess.run(["bash", "-c", f"{source} && env"], capture_output=True, text=True,
                                  check=True).stdout  # fmt: skip
        values = dict(line.split("=", 1) for line in exported.splitlines() if "=" in line)
        assert set(values) >= REQUIRED_ENV | {"LOTE_API_KEY"}
        assert f"API key: {values['LOTE_API_KEY']}" in banner
        # The printed example works as printed in a shell that sourced the env file.
        try_line = next(line for line in banner.splitlines() if line.strip().startswith("try:"))
        tried = subprocess.run(["bash", "-c", f"{source} && {try_line.split('try:', 1)[1]}"],
                               capture_output=True, text=True, check=True, timeout=30).stdout  # fmt: skip
        assert json.loads(tried)["status"] == "queued", tried
        # The printed end-user link opens the web app with a working token.
        link = next(line for line in banner.splitlines() if "web app, end user" in line).split(": ", 1)[1]
        assert link.startswith(f"http://127.0.0.1:{config.api_port}/app/#token=")
        token = link.split("#token=", 1)[1]
        presets = requests.get(f"http://127.0.0.1:{config.api_port}/v1/presets", timeout=10,
                               headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert presets.status_code == 200
        assert requests.get(link.split("#", 1)[0], timeout=10).text.startswith("<!doctype html>")

        worker = _function_leader(launcher.pid, "worker")
        os.killpg(worker, signal.SIGKILL)
        log = tmp_path / "logs" / "worker.log"
        health = f"http://127.0.0.1:{config.worker_port}/healthz"
        _await(lambda: "restarted worker (exit -9), restart #1" in log.read_text() and answers(health),
               60, lambda: log.read_text()[-3000:])  # fmt: skip
        assert _function_leader(launcher.pid, "worker") != worker and launcher.poll() is None
        assert "restarted worker (exit -9), restart #1" in errors.read_text()
        children = _descendants(launcher.pid)
        assert len(children) >= 6  # firestore (+java), storage, tasks, model, api, worker
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=20) == 0
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_healthz_reports_what_the_api_talks_to(stack: Stack):
    with urllib.request.urlopen(stack.url(stack.config.api_port) + "/healthz") as response:
        body = json.load(response)
    assert body["status"] == "ok" and body["mode"] == "local"
    deps = body["dependencies"]
    assert (
        deps["firestore"]["library"] == f"google-cloud-firestore {metadata.version('google-cloud-firestore')}"
    )
    assert deps["tasks"]["endpoint"] == f"127.0.0.1:{stack.config.tasks_port}"
    assert deps["model"]["backend"] == "offline"
    assert deps["model"]["library"] == f"google-genai {metadata.version('google-genai')}"


def test_worker_is_served_on_its_own_port(stack: Stack):
    with urllib.request.urlopen(stack.url(stack.config.worker_port) + "/healthz") as response:
        assert json.load(response)["service"] == "worker"


def test_buckets_exist_in_the_storage_emulator(stack: Stack):
    with urllib.request.urlopen(stack.url(stack.config.storage_port) + "/storage/v1/b") as response:
        names = {item["name"] for item in json.load(response)["items"]}
    c = stack.config
    assert names >= {c.input_bucket, c.output_bucket, c.manifest_bucket}


def test_missing_java_fails_at_once_with_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    gcloud = subprocess.run(["which", "gcloud"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "gcloud").symlink_to(gcloud)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="Java 17"):
        Stack(StackConfig.ephemeral(tmp_path)).start()


def test_missing_gcloud_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match="gcloud is not installed"):
        Stack(StackConfig.ephemeral(tmp_path)).start()


def test_a_killed_worker_comes_back_and_takes_new_work(stack: Stack, tenant: Tenant):
    worker = stack.service("worker")
    before = worker.restarts
    old_pid = stack.kill("worker", signal.SIGKILL)
    health = stack.url(stack.config.worker_port) + "/healthz"
    _await(lambda: worker.restarts > before and answers(health), 60,
           lambda: f"{stack.failure}\n{stack.procs.tail(worker)}")  # fmt: skip
    assert worker.process is not None and worker.process.pid != old_pid
    assert worker.log_path is not None
    assert f"restarted worker (exit -9), restart #{before + 1}" in worker.log_path.read_text()
    response = tenant.post("/v1/generations", {"prompt": "after the worker crashed"})
    assert response.status_code == 202, response.text
    assert tenant.wait(response.json()["id"])["status"] == "succeeded"
