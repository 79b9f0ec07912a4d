"""schemathesis against the local stack: every operation of /v1/openapi.json, every check that
applies, schema-valid and schema-invalid data, and the stateful links (create → get → items →
retry → cancel). Bounded for `make test`; `make fuzz` runs a longer campaign (LOTE_FUZZ_EXAMPLES)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from schemathesis.config import SchemathesisConfig

from lote import openapi
from lote.services import Services
from lote.settings import Settings
from lote.tenants import service as tenants
from lote_local.stack import Stack
from tests.integration import fuzz_support
from tests.integration.conftest import ADMIN_TOKEN, audit_clean
from tests.support import Target

EXAMPLES = int(os.environ.get("LOTE_FUZZ_EXAMPLES", "12"))
STATEFUL_STEPS = int(os.environ.get("LOTE_FUZZ_STATEFUL_STEPS", "6"))
# `make test` replays one seed, so a run that passed passes again; `make fuzz` draws a new one.
SEED = int(os.environ.get("LOTE_FUZZ_SEED", "20261123"))
CONFIG = f"""
seed = {SEED}

[generation]
max-examples = {EXAMPLES}
mode = "all"
database = "none"

[checks]
# 402: a schema-valid request the balance does not cover is refused, by design.
positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "402", "403", "404", "409", "429"]

[phases.stateful]
max-steps = {STATEFUL_STEPS}
"""


@pytest.fixture(scope="module")
def fuzz_tenant(stack: Stack, services: Services) -> Iterator[Any]:
    """The tenant the fuzzer acts as, with an upload, a manifest and a receiver of its own."""
    limits = {"max_in_flight": 100_000, "requests_per_minute": 1_000_000}
    tenant = SimpleNamespace(**tenants.create_tenant(services, "fuzz", 10_000_000, limits))
    bucket = services.settings.input_bucket
    prefix = f"uploads/{tenant.tenant_id}"
    png = base64.b64decode(fuzz_support.STATE.data_uri.split(",", 1)[1])
    services.storage.put_once(bucket, f"{prefix}/fuzz.png", png, "image/png")
    lines = b"".join(fuzz_support.manifest_line(i) for i in range(3))
    services.storage.put_once(bucket, f"{prefix}/fuzz.jsonl", lines, "application/x-ndjson")
    receiver = Target()
    fuzz_support.STATE.upload = f"gs://{bucket}/{prefix}/fuzz.png"
    fuzz_support.STATE.manifest = f"gs://{bucket}/{prefix}/fuzz.jsonl"
    fuzz_support.STATE.receiver = receiver.url + "/hook"
    fuzz_support.STATE.api_key = tenant.api_key
    yield tenant
    receiver.close()


# Collected at import, so built in-process from the same code the stack serves (a test checks the
# served document is this one); the stack's URL and credentials are filled in per call.
DOCUMENT = openapi.document(Settings(_env_file=None, mode="local"))
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_str(CONFIG))


@schema.auth()
class Credentials:
    """The fuzz tenant's key, or the admin token on admin routes."""

    def get(self, case: Any, context: Any) -> str:
        return ADMIN_TOKEN if case.path.startswith("/v1/admin") else fuzz_support.STATE.api_key

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def test_the_served_document_is_valid_openapi_and_the_one_fuzzed(stack: Stack) -> None:
    served = requests.get(stack.url(stack.config.api_port) + "/v1/openapi.json", timeout=10).json()
    validate(served)
    assert {**served, "servers": []} == {**DOCUMENT, "servers": []}


@schema.parametrize()
def test_every_operation_holds_its_contract(case: Any, stack: Stack, fuzz_tenant: Any) -> None:
    case.call_and_validate(base_url=stack.url(stack.config.api_port), timeout=30)


def test_the_workflows_hold_their_contract(stack: Stack, fuzz_tenant: Any) -> None:
    base_url = stack.url(stack.config.api_port)

    class Workflows(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {**super().get_call_kwargs(case), "base_url": base_url, "timeout": 30}

    Workflows.run()


def test_the_fuzzed_tenant_ends_with_the_audit_clean(services: Services, fuzz_tenant: Any) -> None:
    assert fuzz_support.STATE.requests > 0
    audit_clean(services, fuzz_tenant.tenant_id, settle_s=60)
    summary = os.environ.get("LOTE_FUZZ_SUMMARY")
    if summary:  # `make fuzz` reports what was sent
        state = fuzz_support.STATE
        Path(summary).write_text(json.dumps({"requests": state.requests, "statuses": dict(state.statuses)}))
