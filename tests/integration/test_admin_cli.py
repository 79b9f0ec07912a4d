"""`lote-admin` finds the local stack through .lote/local.env and prints exactly one JSON object."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

from lote.billing import purse
from lote.services import Services
from lote.tenants import store
from lote_local.stack import Stack


def test_create_tenant_from_a_folder_with_local_env(stack: Stack, services: Services, tmp_path: Path):
    (tmp_path / ".lote").mkdir()
    shutil.copy(stack.config.state_dir / "local.env", tmp_path / ".lote" / "local.env")
    nested = tmp_path / "some" / "folder"
    nested.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOTE_", "GOOGLE_", "GEMINI_"))}
    env = {k: v for k, v in env.items() if not k.endswith("_EMULATOR_HOST")}
    admin = Path(sys.executable).parent / "lote-admin"
    done = subprocess.run([admin, "create-tenant", "--name", "Acme Realty", "--credits", "25"], cwd=nested,
                          env=env, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    result = json.loads(done.stdout)
    assert done.stdout.count("\n") == 1 and set(result) == {"tenant_id", "api_key"}
    tenant = services.firestore.db.collection(store.TENANTS).document(result["tenant_id"]).get().to_dict()
    assert tenant["name"] == "Acme Realty" and tenant["credits"] == 25  # no slice holds any yet
    response = requests.post(stack.url(stack.config.api_port) + "/v1/generations", json={"prompt": "x"},
                             headers={"Authorization": f"Bearer {result['api_key']}"}, timeout=10)  # fmt: skip
    assert response.status_code == 202


def test_bad_arguments_fail_with_a_message(stack: Stack):
    admin = Path(sys.executable).parent / "lote-admin"
    done = subprocess.run([admin, "create-tenant", "--name", "  ", "--credits", "1"], capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, **stack.env()})  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert json.loads(done.stderr)["error"]["code"] == "invalid_request"


def _audit(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    admin = Path(sys.executable).parent / "lote-admin"
    # Run outside the checkout: a developer's .lote/local.env there must not fill in settings.
    return subprocess.run([admin, "audit", *args], env={**os.environ, **stack.env()}, capture_output=True,
                          text=True, timeout=120, check=False, cwd=stack.config.state_dir)  # fmt: skip


def test_audit_is_clean_for_healthy_work_and_names_what_is_broken(stack: Stack, tenant, services: Services):
    job_id = tenant.post("/v1/generations", {"prompt": "audited"}).json()["id"]
    tenant.wait(job_id)
    clean = _audit(stack, "--tenant", tenant.tenant_id)
    report = json.loads(clean.stdout)
    assert clean.returncode == 0 and report["ok"] is True and report["violations"] == []
    assert report["checked"]["jobs"] == 1 and report["checked"]["ledger_entries"] == 2
    # Break two invariants behind the API's back: credits that no ledger entry explains, and a
    # succeeded image whose output object is gone.
    db = services.firestore.db
    db.collection("tenants").document(tenant.tenant_id).update({"credits": 7})
    job = db.collection("jobs").document(job_id).get().to_dict()
    services.storage.delete(job["output"]["bucket"], job["output"]["object"])
    broken = _audit(stack, "--tenant", tenant.tenant_id)
    found = json.loads(broken.stdout)
    assert broken.returncode == 1 and found["ok"] is False
    assert found["summary"] == {"balance_equals_ledger": 1, "one_output_per_success": 1}
    assert {v["subject"] for v in found["violations"]} == {tenant.tenant_id, job_id}
    # Put it back, so this scenario too ends with the audit clean.
    entries = db.collection("tenants").document(tenant.tenant_id).collection("ledger").stream()
    sliced = purse.read(db, tenant.tenant_id)
    assert sliced is not None
    in_slices = sliced.balance - sliced.credits
    db.collection("tenants").document(tenant.tenant_id).update(
        {"credits": sum(e.get("delta") for e in entries) - in_slices}
    )
    services.storage.put_once(job["output"]["bucket"], job["output"]["object"], b"x", "image/png")


def test_an_operator_allows_a_site_and_mints_an_end_user_link(stack: Stack, tenant, services: Services):
    from lote.admin import cli

    site = "https://staging.partner.example"
    shown = cli.run(["set-plan", "--tenant", tenant.tenant_id, "--allowed-origin", site], services)
    assert shown["allowed_origins"] == [site]
    minted = cli.run(
        ["client-token", "--tenant", tenant.tenant_id, "--subject", "u-7", "--ttl-s", "600"], services
    )
    assert minted["subject"] == "u-7" and minted["link"].endswith(f"/app/#token={minted['token']}")
    assert minted["scopes"] == ["generations:create", "generations:read", "uploads:create"]
    headers = {"Authorization": f"Bearer {minted['token']}", "Origin": site}
    answer = requests.post(stack.url(stack.config.api_port) + "/v1/generations", json={"prompt": "x"},
                           headers=headers, timeout=10)  # fmt: skip
    assert answer.status_code == 202 and answer.headers["Access-Control-Allow-Origin"] == site
    tenant.wait(answer.json()["id"])
    cleared = cli.run(["set-plan", "--tenant", tenant.tenant_id, "--clear-allowed-origins"], services)
    assert cleared["allowed_origins"] == []
