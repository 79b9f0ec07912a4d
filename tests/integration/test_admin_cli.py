"""`lote-admin` finds the local stack through .lote/local.env and prints exactly one JSON object."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

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
    assert tenant["name"] == "Acme Realty" and tenant["credits"] == 25
    response = requests.post(stack.url(stack.config.api_port) + "/v1/generations", json={"prompt": "x"},
                             headers={"Authorization": f"Bearer {result['api_key']}"}, timeout=10)  # fmt: skip
    assert response.status_code == 202


def test_bad_arguments_fail_with_a_message(stack: Stack):
    admin = Path(sys.executable).parent / "lote-admin"
    done = subprocess.run([admin, "create-tenant", "--name", "  ", "--credits", "1"], capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, **stack.env()})  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert json.loads(done.stderr)["error"]["code"] == "invalid_request"
