"""Accounts, keys and the ledger: tenant routes, admin routes (token), lote-admin commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from lote.billing import ledger, purse
from lote.services import Services
from lote.tenants.store import DEFAULT_LIMITS, TENANTS
from lote_local.stack import Stack
from tests.integration.conftest import ADMIN_TOKEN


def _balance_equals_ledger(services: Services, tenant_id: str) -> int:
    db = services.firestore.db
    found = purse.read(db, tenant_id)
    assert found is not None
    balance = found.balance
    entries = db.collection(TENANTS).document(tenant_id).collection(ledger.LEDGER).stream()
    assert balance == sum(e.to_dict()["delta"] for e in entries)
    return int(balance)


def _admin(stack: Stack) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    return http


def test_account_and_ledger(new_tenant, services: Services):
    tenant = new_tenant(credits=40, limits=DEFAULT_LIMITS)
    tenant.post("/v1/generations", {"prompt": "slow [[latency=1000]]"})
    account = tenant.get("/v1/account").json()
    assert account["balance"] == 39 and account["plan"] == "standard"  # the image was paid at acceptance
    assert account["limits"] == {
        "max_in_flight": 100,
        "requests_per_minute": 600,
        "subject_requests_per_minute": 120,
    }
    assert account["in_flight"] == 1 and account["images_this_month"] == 1
    assert account["generations_in_flight"] == 1
    entries = tenant.get("/v1/account/ledger").json()["entries"]
    # A single's debit is made on one slice of the balance, which reads no other: no balance_after.
    assert [(e["delta"], e["reason"], e.get("balance_after")) for e in entries] == [
        (-1, "debit", None),
        (40, "grant", 40),
    ]
    assert _balance_equals_ledger(services, tenant.tenant_id) == 39


def test_admin_routes(stack: Stack, new_tenant, services: Services):
    admin, api = _admin(stack), stack.url(stack.config.api_port)
    created = admin.post(f"{api}/v1/admin/tenants", json={"name": "Acme", "credits": 5}, timeout=10)
    assert created.status_code == 201
    tenant_id = created.json()["tenant_id"]
    grant = {"credits": 100, "reason": "welcome"}
    for _ in range(2):  # the same Idempotency-Key enters the grant once
        response = admin.post(f"{api}/v1/admin/tenants/{tenant_id}/credits", json=grant,
                              headers={"Idempotency-Key": "g-1"}, timeout=10)  # fmt: skip
        assert response.status_code == 201 and response.json()["balance_after"] == 105
    key = admin.post(f"{api}/v1/admin/tenants/{tenant_id}/keys", json={"name": "crm"}, timeout=10).json()
    assert key["api_key"].startswith("lote_sk_") and key["name"] == "crm"
    listed = admin.get(f"{api}/v1/admin/tenants/{tenant_id}/keys", timeout=10).json()["keys"]
    assert [k["name"] for k in listed] == ["default", "crm"] and all("api_key" not in k for k in listed)
    as_tenant = {"Authorization": f"Bearer {key['api_key']}"}
    assert requests.get(f"{api}/v1/account", headers=as_tenant, timeout=10).json()["balance"] == 105
    revoked = admin.post(f"{api}/v1/admin/tenants/{tenant_id}/keys/{key['key_id']}/revoke", timeout=10)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert requests.get(f"{api}/v1/account", headers=as_tenant, timeout=10).status_code == 401
    shown = admin.get(f"{api}/v1/admin/tenants/{tenant_id}", timeout=10).json()
    assert shown["balance"] == 105 and len(shown["keys"]) == 2
    other = new_tenant()
    missing = admin.post(f"{api}/v1/admin/tenants/{other.tenant_id}/keys/{key['key_id']}/revoke", timeout=10)
    assert missing.status_code == 404
    assert _balance_equals_ledger(services, tenant_id) == 105


def test_admin_routes_need_the_token(stack: Stack, tenant):
    api = stack.url(stack.config.api_port)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {tenant.api_key}"}):
        response = requests.post(f"{api}/v1/admin/tenants", json={"name": "x"}, headers=headers, timeout=10)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
    bad = _admin(stack).post(f"{api}/v1/admin/tenants/{tenant.tenant_id}/credits", json={"credits": 0, "reason": "x"},
                             timeout=10)  # fmt: skip
    assert bad.status_code == 400


def test_concurrent_grants_keep_balance_equal_to_the_ledger(stack: Stack, tenant, services: Services):
    api = stack.url(stack.config.api_port)
    admin = _admin(stack)

    def grant(i: int) -> tuple[int, int]:
        url = f"{api}/v1/admin/tenants/{tenant.tenant_id}/credits"
        response = admin.post(url, json={"credits": 1 + i % 3, "reason": f"r{i}"}, timeout=120)
        if response.status_code == 429:  # contention: the documented answer is "retry"
            assert response.json()["error"]["code"] == "contention" and response.headers["Retry-After"]
        return response.status_code, 1 + i % 3

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(grant, range(12)))
    assert {status for status, _ in answers} <= {201, 429}
    granted = sum(credits for status, credits in answers if status == 201)
    assert _balance_equals_ledger(services, tenant.tenant_id) == 100_000 + granted


def test_lote_admin_commands(stack: Stack, tenant, services: Services, tmp_path: Path):
    admin = Path(sys.executable).parent / "lote-admin"
    env = {**os.environ, **stack.env()}

    def run(*args: str) -> dict:
        done = subprocess.run([admin, *args], env=env, capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout)

    assert (
        run("grant-credits", "--tenant", tenant.tenant_id, "--credits", "7", "--reason", "support")[
            "balance_after"
        ]
        == 100_007
    )
    key = run("create-key", "--tenant", tenant.tenant_id, "--name", "ops")
    assert run("revoke-key", "--tenant", tenant.tenant_id, "--key-id", key["key_id"])["revoked_at"]
    shown = run("show-tenant", "--tenant", tenant.tenant_id)
    assert shown["balance"] == 100_007 and [k["name"] for k in shown["keys"]] == ["default", "ops"]
    bad = subprocess.run([admin, "grant-credits", "--tenant", tenant.tenant_id, "--credits", "-3", "--reason", "x"],
                         env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and json.loads(bad.stderr)["error"]["code"] == "invalid_request"
    assert _balance_equals_ledger(services, tenant.tenant_id) == 100_007
