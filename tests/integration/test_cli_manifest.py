"""A 10,500-row CSV through `lote batch submit`: more than a POST may carry, so the client uploads it
as a JSONL manifest. On a stack of its own: 10,500 job documents would slow the shared Firestore
emulator's queries for every test after this one (its in-memory queries scan)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lote.batches.schemas import MAX_INLINE_ITEMS
from lote.services import Services
from lote.settings import Settings
from lote_local.config import REPO_ROOT, StackConfig
from lote_local.stack import Stack
from tests.integration.conftest import Tenant, tenant_factory
from tests.integration.test_cli import _json, lote

ROWS = MAX_INLINE_ITEMS + 500  # more than one POST may carry: the client uploads a manifest


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack for one big batch."""
    config = StackConfig.ephemeral(tmp_path_factory.mktemp("big"), queue_yaml=REPO_ROOT / "tests" / "fixtures" / "queue.yaml",
                                   model_timeout_s=3, model_long_edge=64)  # fmt: skip
    running = Stack(config)
    running.start()
    running.write_env_file(config.state_dir / "local.env")
    yield running
    running.stop()


@pytest.fixture
def big_tenant(big: Stack) -> Iterator[Callable[..., Tenant]]:
    """Tenants of the big stack, audited clean at the end."""
    yield from tenant_factory(big, Services.build(Settings(_env_file=big.config.state_dir / "local.env")))


def test_a_csv_of_more_rows_than_a_post_may_carry_goes_up_as_a_manifest(
    big_tenant: Callable[..., Tenant], tmp_path: Path
):
    tenant = big_tenant(credits=20_000)
    rows = "".join(f"big-{i},a room {i}\n" for i in range(ROWS))
    (tmp_path / "big.csv").write_text("reference,prompt\n" + rows)
    accepted = lote(tenant, "batch", "submit", tmp_path / "big.csv", "--priority", "economy", "--json")
    assert accepted.exit_code == 0, accepted.output
    batch_id = _json(accepted)["id"]
    assert _json(accepted)["total"] == ROWS
    canceled = _json(lote(tenant, "batch", "cancel", batch_id, "--json"))  # the test needs no images
    assert canceled["status"] == "canceled"
    deadline = time.monotonic() + 180
    while (body := tenant.get(f"/v1/batches/{batch_id}").json())["counts"]["canceled"] + body["counts"][
        "succeeded"
    ] < ROWS:
        assert time.monotonic() < deadline, body["counts"]
        time.sleep(1)
