"""One tenant, many end users at once: single generations are admitted through purse slices
(billing/purse.py), and the balance and the in-flight limit stay exact across them."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from lote.billing import ledger, purse
from lote.services import Services
from tests.integration.conftest import ADMIN_TOKEN


def _post_many(tenant, n: int, tag: str) -> list[requests.Response]:
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda i: tenant.post("/v1/generations", {"prompt": f"{tag} {i}"}), range(n)))


def _grant(tenant, credits: int) -> None:
    url = f"{tenant.base}/v1/admin/tenants/{tenant.tenant_id}/credits"
    answer = requests.post(url, json={"credits": credits, "reason": "test"},
                           headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)  # fmt: skip
    assert answer.status_code == 201, answer.text


def test_slices_keep_the_limit_and_the_balance_exact_across_end_users(
    new_tenant, services: Services, tasks_client, generation_queue: str
):
    tenant = new_tenant(credits=1000, limits={"max_in_flight": 12})
    db = services.firestore.db
    tasks_client.pause_queue(name=generation_queue)  # nothing finishes while we count
    try:
        answers = _post_many(tenant, 40, "crowd")
        assert Counter(a.status_code for a in answers) == {202: 12, 429: 28}
        assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} == {"too_many_in_flight"}
        accepted = [a.json()["id"] for a in answers if a.status_code == 202]
        used = Counter(db.collection("jobs").document(j).get().get("purse_slice") for j in accepted)
        assert len(used) > 1  # spread over slices, not one document
        found = purse.read(db, tenant.tenant_id)
        assert found is not None and found.balance == 1000 - 12 and found.free_slots(12) == 0

        # A finished single gives its slot back to its slice; the limit still counts every slice.
        for job_id in accepted[:4]:
            assert tenant.post(f"/v1/generations/{job_id}/cancel").status_code == 200
        again = _post_many(tenant, 8, "again")
        assert Counter(a.status_code for a in again) == {202: 4, 429: 4}
        accepted = accepted[4:] + [a.json()["id"] for a in again if a.status_code == 202]

        # A lower limit binds at once: the slices' spare slots return to the tenant document.
        url = f"{tenant.base}/v1/admin/tenants/{tenant.tenant_id}"
        lowered = requests.patch(url, json={"max_in_flight": 10},
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)  # fmt: skip
        assert lowered.status_code == 200
        assert tenant.post("/v1/generations", {"prompt": "over"}).status_code == 429
        for job_id in accepted[:3]:
            assert tenant.post(f"/v1/generations/{job_id}/cancel").status_code == 200
        assert [a.status_code for a in [tenant.post("/v1/generations", {"prompt": "room"})]] == [202]
        assert tenant.post("/v1/generations", {"prompt": "full"}).status_code == 429

        # A debt larger than the tenant document holds (a Stripe refund clawed back) gathers every
        # slice; a refund landing on a frozen slice is not spendable while the debt lasts.
        balance = purse.read(db, tenant.tenant_id).balance  # type: ignore[union-attr]
        ledger.apply(
            db, tenant.tenant_id, ledger.Entry("clawback-test", -(balance + 5), "clawback", "ch_test")
        )
        debt = purse.read(db, tenant.tenant_id)
        assert debt is not None and debt.balance == -5 and all(s.credits == 0 for s in debt.slices.values())
        assert tenant.post(f"/v1/generations/{accepted[3]}/cancel").status_code == 200  # refunds 1
        refused = tenant.post("/v1/generations", {"prompt": "in debt"})
        assert refused.status_code == 402 and refused.json()["error"]["details"]["available"] == -4
        _grant(tenant, 10)
        assert tenant.post("/v1/generations", {"prompt": "paid up"}).status_code == 202
        assert purse.read(db, tenant.tenant_id).balance == 5  # type: ignore[union-attr]
    finally:
        tasks_client.resume_queue(name=generation_queue)
