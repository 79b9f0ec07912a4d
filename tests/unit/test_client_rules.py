"""The Python client's rules that need no server: its models against the OpenAPI document, retry
delays, item files, download names, webhook verification, and the command line's exit codes."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from lote import openapi
from lote.settings import Settings
from lote_client import cli, models
from lote_client._download import _api_path
from lote_client._http import RetryPolicy, server_delay
from lote_client._shared import FileNames, file_name, read_items, upload_name
from lote_client.errors import (
    ConnectionFailed,
    InvalidRequest,
    LoteError,
    ServerError,
    WaitTimeout,
    WebhookVerificationError,
    from_answer,
)
from lote_client.webhooks import verify

# The client's model → the document's schema of the same resource.
SCHEMAS = {
    models.Accepted: "Accepted", models.Generation: "Generation", models.Output: "Output", models.JobError: "JobError", models.Quality: "Quality",
    models.Check: "Check", models.Links: "Links", models.Batch: "Batch", models.Counts: "Counts",
    models.Fanout: "Fanout", models.BatchLinks: "BatchLinks", models.BatchAccepted: "BatchAccepted",
    models.BatchSummary: "BatchSummary", models.Item: "Item", models.ItemOutput: "ItemOutput",
    models.Preset: "Preset", models.PresetParam: "PresetParam", models.Rubric: "Rubric",
    models.Upload: "UploadAnswer", models.Usage: "Usage", models.UsagePeriod: "UsagePeriod",
    models.UsageRow: "UsageRow", models.SpendControls: "SpendControls",
}  # fmt: skip


def test_every_client_model_has_exactly_the_documents_fields_and_requires_no_more():
    schemas = openapi.document(Settings(_env_file=None))["components"]["schemas"]
    for model, name in SCHEMAS.items():
        schema = schemas[name]
        documented, required = set(schema["properties"]), set(schema.get("required", []))
        fields = {info.alias or f for f, info in model.model_fields.items()}  # `from_` is `from` on the wire
        assert fields == documented, (model.__name__, fields ^ documented)
        client_required = {info.alias or f for f, info in model.model_fields.items() if info.is_required()}
        assert client_required <= required, (model.__name__, client_required - required)


def test_a_server_that_names_its_wait_is_obeyed_else_jittered_backoff_grows_to_its_cap():
    assert server_delay({"Retry-After": "7"}) == 7
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 18 <= (server_delay({"Retry-After": later}) or 0) <= 20
    assert server_delay({"RateLimit-Remaining": "0", "RateLimit-Reset": "12"}) == 12
    assert server_delay({"RateLimit-Remaining": "3", "RateLimit-Reset": "12"}) is None
    policy = RetryPolicy(attempts=9, base_s=0.5, cap_s=4, max_wait_s=60)
    assert 7 <= (policy.delay(1, {"Retry-After": "7"}) or 0) <= 7.7  # told 7 s: that, in full, beyond the cap
    assert policy.delay(1, {"Retry-After": "600"}) is None  # longer than the caller would wait: no retry
    assert all(
        0 <= (policy.delay(n) or 0) <= min(4, 0.5 * 2 ** (n - 1)) for n in range(1, 9) for _ in range(20)
    )


def test_error_answers_become_typed_exceptions_carrying_the_apis_fields():
    bad = from_answer(
        400, {"error": {"code": "invalid_request", "message": "no", "details": {"field": "prompt"}}}
    )
    assert isinstance(bad, InvalidRequest) and bad.details == {"field": "prompt"} and bad.status == 400
    proxy = from_answer(502, None, "<html>bad gateway</html>")
    assert isinstance(proxy, ServerError) and proxy.code == "http_502"
    assert cli._exit_code(bad) == cli.REFUSED and cli._exit_code(proxy) == cli.UNREACHABLE
    assert cli._exit_code(ConnectionFailed(0, "connection_failed", "x")) == cli.UNREACHABLE
    assert cli._exit_code(WaitTimeout(0, "wait_timeout", "x")) == cli.TIMED_OUT
    assert cli._exit_code(WebhookVerificationError("x")) == cli.UNVERIFIED


def test_items_files_read_csv_columns_and_jsonl_lines_and_name_what_is_wrong(tmp_path: Path):
    rows = tmp_path / "items.csv"
    rows.write_text("reference,preset,images,params.style,metadata.crm_id,verify,max_regenerations\n"
                    "A-1,virtual-staging,https://x/a.jpg https://x/b.jpg,boho,991,true,1\n"
                    "A-2,declutter,https://x/c.jpg,,,,\n")  # fmt: skip
    first, second = read_items(rows)
    assert first == {"reference": "A-1", "preset": "virtual-staging", "images": ["https://x/a.jpg", "https://x/b.jpg"],
                     "params": {"style": "boho"}, "metadata": {"crm_id": "991"}, "verify": True,
                     "max_regenerations": 1}  # fmt: skip
    assert second == {"reference": "A-2", "preset": "declutter", "images": ["https://x/c.jpg"]}
    lines = tmp_path / "items.jsonl"
    lines.write_text('{"reference": "x", "prompt": "a cat"}\n\n{"reference": "y", "prompt": "a dog"}\n')
    assert [i["reference"] for i in read_items(lines)] == ["x", "y"]
    rows.write_text("reference,room\nA-1,kitchen\n")
    with pytest.raises(LoteError, match=r"params\.room or metadata\.room"):
        read_items(rows)
    lines.write_text('{"reference": "x"}\nnot json\n')
    with pytest.raises(LoteError, match=r"items\.jsonl:2"):
        read_items(lines)


def test_download_names_are_the_reference_made_safe_and_never_shared():
    assert file_name("A-12.b", "image/png") == "A-12.b.png"
    unsafe = [file_name(ref, "image/jpeg") for ref in ("a/b", "a_b", "a:b", "../../etc")]
    assert len(set(unsafe)) == 4 and all("/" not in n and not n.startswith(".") for n in unsafe)


def test_references_differing_only_in_case_get_files_a_case_insensitive_disk_keeps_apart():
    # macOS and Windows ignore case: `Kitchen.png` and `kitchen.png` were one file there, each
    # download overwrote the other and every rerun fetched both again.
    names = FileNames()
    given = [names.name(ref, mime) for ref, mime in
             (("Kitchen", "image/png"), ("kitchen", None), ("KITCHEN", "image/jpeg"), ("hall", "image/png"))]  # fmt: skip
    assert given[0] == "Kitchen.png" and given[3] == "hall.png"
    stems = [name.rsplit(".", 1)[0].casefold() for name in given]
    assert len(set(stems)) == 4  # the item without an output (still failed) reserved its name too
    again = FileNames()  # a rerun, in the same item order, names each file as the first run did
    assert [again.name(r, m) for r, m in (("Kitchen", "image/png"), ("kitchen", "image/png"))] == [
        "Kitchen.png", given[1].replace(".bin", ".png")]  # fmt: skip


def _signed(secret: str, body: bytes, msg_id: str = "msg_1", at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": f"v1,{mac}"}


def test_webhooks_verify_with_either_secret_during_a_rotation_and_refuse_anything_altered():
    old, new = (
        "whsec_" + base64.b64encode(b"o" * 24).decode(),
        "whsec_" + base64.b64encode(b"n" * 24).decode(),
    )
    body = json.dumps({"type": "generation.succeeded", "data": {"id": "gen_1"}}).encode()
    assert verify(_signed(old, body), body, [new, old])["data"]["id"] == "gen_1"
    both = _signed(new, body)
    both["webhook-signature"] += " " + _signed(old, body)["webhook-signature"]
    assert verify(both, body, old)["type"] == "generation.succeeded"  # lote signs with both secrets
    refusals: list[tuple[dict[str, str], bytes, Any]] = [
        (_signed(old, body), body + b" ", old),  # the body changed
        (_signed(old, body), body, new),  # another secret
        (_signed(old, body, at=int(time.time()) - 3600), body, old),  # a replayed old capture
        ({"webhook-id": "m"}, body, old),  # headers missing
    ]
    for headers, sent, secret in refusals:
        with pytest.raises(WebhookVerificationError):
            verify(headers, sent, secret)


def test_models_keep_fields_a_newer_server_adds():
    found = models.Counts.model_validate({"total": 1, "queued": 0, "running": 0, "succeeded": 1, "failed": 0,
                                          "canceled": 0, "held": 3})  # fmt: skip
    assert isinstance(found, BaseModel) and found.model_extra == {"held": 3}


def test_what_the_review_found_a_csv_row_too_long_a_bad_retry_after_and_local_errors():
    assert server_delay({"Retry-After": "1.5"}) is None  # neither seconds nor a date: not a crash
    assert cli._exit_code(LoteError(0, "invalid_items_file", "x")) == cli.USAGE  # not "unreachable"
    assert cli._exit_code(from_answer(503, None)) == cli.UNREACHABLE


def test_a_row_with_more_cells_than_columns_is_named(tmp_path: Path):
    rows = tmp_path / "items.csv"
    rows.write_text("reference,prompt\nA-1,a cat,surplus\n")
    with pytest.raises(LoteError, match=r"items\.csv:2: more cells than columns"):
        read_items(rows)


def test_output_links_are_followed_under_the_clients_own_base_url():
    base = "https://gateway.example/lote"
    assert _api_path(f"{base}/v1/generations/g/output", base) == "/v1/generations/g/output"
    assert _api_path("http://10.0.0.7:8080/v1/generations/g/output", base) == "/v1/generations/g/output"
    assert _api_path("https://gateway.example/lote/v1/x?a=1", "https://other/lote") == "/v1/x?a=1"
    assert upload_name(Path("my photo é.jpg")) == "my_photo__.jpg"


def test_the_command_without_its_extra_names_what_to_install_in_one_line() -> None:
    # A plain `pip install lote-client` has neither click nor rich (the `cli` extra's).
    import subprocess
    import sys

    for missing in ("click", "rich"):
        code = f"import sys; sys.modules[{missing!r}] = None; from lote_client.__main__ import main; main()"
        ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert ran.returncode == cli.USAGE and ran.stdout == ""
        assert ran.stderr.splitlines() == [
            f"lote: the command line needs {missing}, which the client alone does not install: "
            "pip install 'lote-client[cli]'"
        ]


def test_the_installed_command_is_the_entry_point_that_works_without_the_extra() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "clients/python/pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"lote": "lote_client.__main__:main"}
    assert "click" not in " ".join(project["project"]["dependencies"])


def test_usage_ranges_are_sent_as_the_api_reads_them_and_unset_controls_are_not_sent():
    import datetime as dt

    from lote_client import _shared

    naive = dt.datetime(2026, 12, 5, 10, 30)
    assert _shared.usage_params(naive, dt.date(2026, 12, 6), "hour", None, "json") == {
        "from": "2026-12-05T10:30:00Z", "to": "2026-12-06", "granularity": "hour"}  # fmt: skip
    assert _shared.usage_params(None, None, "day", "status", "csv") == {
        "granularity": "day", "group_by": "status", "format": "csv"}  # fmt: skip
    body = _shared.spend_controls_body(
        daily_cap=None, monthly_cap=_shared.UNSET, webhook_url="https://x.test/h"
    )
    assert body == {"daily_cap": None, "webhook_url": "https://x.test/h"}  # None removes; unset stays


def test_a_spend_cap_refusal_is_its_own_kind_of_permission_denied():
    from lote_client import PermissionDenied, SpendCapReached

    refused = from_answer(
        403, {"error": {"code": "spend_cap_reached", "message": "cap", "details": {"period": "day"}}}
    )
    assert isinstance(refused, SpendCapReached) and isinstance(refused, PermissionDenied)
    assert refused.details == {"period": "day"}
