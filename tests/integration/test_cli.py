"""The `lote` command line against the local stack: every command, `--json`, the exit codes a script
relies on, and Ctrl-C while following a batch (a CSV of 10,500 rows: test_cli_manifest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from lote_client import cli
from lote_client._http import RetryPolicy
from tests.integration.conftest import Tenant
from tests.support import Target


def lote(tenant: Tenant, *args: str | Path) -> Result:
    """Run `lote ARGS` in-process as a partner would, with the key and URL from the environment."""
    env = {"LOTE_API_URL": tenant.base, "LOTE_API_KEY": tenant.api_key}
    return CliRunner().invoke(cli.main, [str(a) for a in args], env=env, catch_exceptions=False)


def _json(result: Result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_generate_uploads_waits_and_saves_and_its_exit_code_says_how_it_went(
    tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    photo = tmp_path / "room.png"
    Image.new("RGB", (96, 64), (200, 190, 180)).save(photo)
    made = lote(tenant, "generate", photo, "--preset", "declutter", "--param", "room_type=bedroom",
                "-o", tmp_path / "staged.png", "--json")  # fmt: skip
    assert made.exit_code == 0, made.output
    answer = _json(made)
    assert (
        answer["status"] == "succeeded"
        and answer["quality"]["passed"]
        and answer["params"]["room_type"] == "bedroom"
    )
    assert Path(answer["saved_to"]).read_bytes()[:4] == b"\x89PNG"
    text = lote(tenant, "generate", "-p", "a blue door", "-o", tmp_path)
    assert text.exit_code == 0 and text.stdout.strip().endswith(".png")
    refused = lote(tenant, "generate", "-p", "no [[fault=safety]]", "--json")
    assert refused.exit_code == cli.INCOMPLETE and _json(refused)["error"]["code"] == "safety_blocked"
    invalid = lote(tenant, "generate", "--preset", "nope", "--json")
    assert invalid.exit_code == cli.REFUSED and _json(invalid)["error"]["details"]["field"] == "preset"
    queued = lote(tenant, "generate", "-p", "later", "--no-wait")
    assert queued.exit_code == 0 and queued.stdout.strip().startswith("gen_")
    # Unreachable after every retry; without the client's backoff between them (0-15 s at random).
    monkeypatch.setattr(RetryPolicy, "backoff", lambda _self, _attempt: 0.0)
    down = CliRunner().invoke(cli.main, ["--api-url", "http://127.0.0.1:9", "--api-key", "k", "presets"])
    assert down.exit_code == cli.UNREACHABLE


def test_batch_commands_from_submit_to_download_and_their_json(tenant: Tenant, tmp_path: Path):
    rows = (
        ["reference,prompt"]
        + [f"crm-{i},kitchen {i} [[latency=100]]" for i in range(6)]
        + ["crm-x,no [[fault=safety]]"]
    )
    (tmp_path / "items.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    done = lote(tenant, "batch", "submit", tmp_path / "items.csv", "--wait", "--download", out, "--json")
    assert done.exit_code == cli.INCOMPLETE, done.output  # one item failed: a script can tell
    summary = _json(done)
    batch_id = summary["id"]
    assert summary["counts"]["succeeded"] == 6 and summary["download"]["downloaded"] == 6
    assert sorted(p.name for p in out.iterdir()) == [f"crm-{i}.png" for i in range(6)]
    assert _json(lote(tenant, "batch", "status", batch_id, "--json"))["status"] == "completed"
    failed = lote(tenant, "batch", "items", batch_id, "--status", "failed", "--json")
    assert [json.loads(line)["reference"] for line in failed.stdout.splitlines()] == ["crm-x"]
    assert "crm-x\tfailed safety_blocked" in lote(tenant, "batch", "items", batch_id).stdout
    results = lote(tenant, "batch", "results", batch_id, "-o", tmp_path / "results.jsonl")
    assert results.exit_code == 0 and len((tmp_path / "results.jsonl").read_text().splitlines()) == 7
    again = lote(tenant, "batch", "download", batch_id, out, "--json")
    assert again.exit_code == 0 and _json(again)["skipped"] == 6  # resumed: nothing fetched twice
    assert _json(lote(tenant, "batch", "retry", batch_id, "--include-permanent", "--json")) == {"retried": 1}
    assert lote(tenant, "batch", "status", batch_id, "--wait").exit_code == cli.INCOMPLETE  # fails again
    finished = lote(tenant, "batch", "cancel", batch_id, "--json")
    assert finished.exit_code == cli.REFUSED and _json(finished)["error"]["code"] == "batch_completed"
    assert "virtual-staging" in lote(tenant, "presets").stdout


def test_webhooks_verify_checks_a_captured_delivery(tenant: Tenant, target: Target, tmp_path: Path):
    secret = tenant.get("/v1/account/webhook-secret").json()["secret"]
    tenant.post("/v1/generations", {"prompt": "a captured porch", "webhook_url": target.url})
    [hit] = target.wait_for(1)
    (tmp_path / "headers.txt").write_text("".join(f"{k}: {v}\n" for k, v in hit.headers.items()))
    (tmp_path / "body.json").write_bytes(hit.body)
    args = [
        "webhooks",
        "verify",
        "--secret",
        secret,
        "--headers",
        tmp_path / "headers.txt",
        "--body",
        tmp_path / "body.json",
    ]
    assert lote(tenant, *args).stdout.startswith("verified: generation.succeeded")
    (tmp_path / "body.json").write_bytes(hit.body + b" ")
    assert lote(tenant, *args).exit_code == cli.UNVERIFIED


def test_ctrl_c_while_following_leaves_the_batch_running_and_says_how_to_resume(
    tenant: Tenant, tmp_path: Path
):
    (tmp_path / "items.jsonl").write_text("".join(json.dumps({"reference": f"s{i}", "prompt": f"slow {i} [[latency=800]]"}) + "\n"
                                                  for i in range(4)))  # fmt: skip
    env = {**os.environ, "LOTE_API_URL": tenant.base, "LOTE_API_KEY": tenant.api_key}
    command = [
        str(Path(sys.executable).with_name("lote")),
        "batch",
        "submit",
        str(tmp_path / "items.jsonl"),
        "--wait",
    ]
    follow = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert follow.stderr is not None
    first = follow.stderr.readline()  # "batch bat_…: 4 items"
    batch_id = first.split()[1].rstrip(":")
    follow.send_signal(signal.SIGINT)
    _, rest = follow.communicate(timeout=30)
    assert follow.returncode == cli.INTERRUPTED, (first, rest)
    assert f"Batch {batch_id} goes on" in rest and f"lote batch status {batch_id}" in rest
    deadline = time.monotonic() + 60
    while tenant.get(f"/v1/batches/{batch_id}").json()["status"] != "completed":  # it went on
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_the_quickstart_example_runs_start_to_finish(tenant: Tenant, tmp_path: Path):
    env = {**os.environ, "LOTE_API_URL": tenant.base, "LOTE_API_KEY": tenant.api_key}
    script = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "50 images saved" in done.stdout and (tmp_path / "nook.png").exists()
    assert len(list((tmp_path / "listings").iterdir())) == 50
