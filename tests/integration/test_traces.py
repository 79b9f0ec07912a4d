"""One trace per image across the local stack's processes: the api and the worker export their spans
(logs/{function}.spans.jsonl, tracing.py's file exporter), and the spans of one image form one tree
from the request that accepted it to the webhook its end sent."""

from __future__ import annotations

import base64
import io
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from lote_local.stack import Stack
from tests.integration.conftest import Tenant
from tests.integration.test_batches import wait_batch
from tests.support import Target


def _photo() -> str:
    out = io.BytesIO()
    Image.new("RGB", (48, 36), (230, 220, 200)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _spans(stack: Stack, trace_id: str) -> list[dict[str, Any]]:
    found = []
    for path in stack.procs.log_dir.glob("*.spans.jsonl"):
        for line in path.read_text().splitlines():
            span = json.loads(line)
            if span["trace"] == trace_id:
                found.append({**span, "process": path.name.split(".")[0]})
    return found


def _until_spans(
    stack: Stack, trace_id: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        spans = _spans(stack, trace_id)
        if done(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def _path(spans: list[dict[str, Any]], leaf: dict[str, Any]) -> list[str]:
    """The names from the trace's root down to `leaf`."""
    by_id = {span["span"]: span for span in spans}
    names, current = [], leaf
    while current is not None:
        names.append(current["name"])
        current = by_id.get(current["parent"])
    return names[::-1]


def _traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def test_a_staged_image_is_one_trace_from_accept_to_its_webhook(tenant: Tenant, stack: Stack, target: Target):
    trace_id, header = _traceparent()
    body = {"preset": "virtual-staging", "params": {"style": "coastal"}, "images": [_photo()],
            "webhook_url": target.url + "/hook"}  # fmt: skip
    accepted = tenant.post("/v1/generations", body, headers={"traceparent": header}).json()
    assert tenant.wait(accepted["id"], timeout=60)["status"] == "succeeded"
    [hook] = target.wait_for(1)
    assert hook.headers["traceparent"].split("-")[1] == trace_id  # the receiver can join it too
    spans = _until_spans(stack, trace_id, lambda found: any(s["name"] == "webhook.post" for s in found))
    model = [s for s in spans if s["name"] == "gemini.generate_content"]
    assert len(model) == 3  # analyze, generate, verify
    generate = _path(spans, next(s for s in spans if s["name"] == "storage.put_output"))
    assert generate[0] == "POST /v1/generations" and "POST /tasks/generate" in generate
    webhook = _path(spans, next(s for s in spans if s["name"] == "webhook.post"))
    assert webhook[:3] == ["POST /v1/generations", "POST /tasks/generate", "job.settle"]
    assert webhook[-2:] == ["POST /tasks/webhook", "webhook.post"]
    assert {s["process"] for s in spans} == {"api", "worker"}


def test_a_batch_item_is_one_trace_from_the_batch_accept_through_its_release(
    new_tenant: Callable[..., Tenant], stack: Stack
):
    tenant = new_tenant()
    trace_id, header = _traceparent()
    batch_id = tenant.post("/v1/batches", {"items": [{"reference": "only", "prompt": "a hallway"}]},
                           headers={"traceparent": header}).json()["id"]  # fmt: skip
    assert wait_batch(tenant, batch_id)["counts"]["succeeded"] == 1
    spans = _until_spans(stack, trace_id, lambda found: any(s["name"] == "job.settle" for s in found))
    settle = _path(spans, next(s for s in spans if s["name"] == "job.settle"))
    # Accepted, fanned out, held, released by a dispatcher tick (a trace of its own), attempted.
    assert settle[0] == "POST /v1/batches"
    assert [n for n in settle if n.startswith("POST /tasks/")] == [
        "POST /tasks/fanout-plan",
        "POST /tasks/fanout-chunk",
        "POST /tasks/generate",
    ]
    assert any(s["name"] == "gemini.generate_content" for s in spans)


def test_a_generation_shows_its_timeline_when_asked(tenant: Tenant, target: Target):
    body = {"prompt": "a timeline [[fault=503 times=1]]", "webhook_url": target.url + "/hook", "reuse": False}
    job_id = tenant.post("/v1/generations", body).json()["id"]
    assert tenant.wait(job_id, timeout=60)["status"] == "succeeded"
    target.wait_for(1)
    assert "timeline" not in tenant.get(f"/v1/generations/{job_id}").json()  # only when asked

    def webhook_recorded() -> list[dict[str, Any]]:
        deadline = time.monotonic() + 20
        while True:
            events = tenant.get(f"/v1/generations/{job_id}?include=timeline").json()["timeline"]
            if any(e["event"] == "webhook" for e in events) or time.monotonic() > deadline:
                return list(events)
            time.sleep(0.2)

    events = webhook_recorded()
    names = [e["event"] for e in events]
    assert names[0] == "accepted" and names[-1] == "webhook"
    assert [e["detail"].get("end") for e in events if e["event"] == "attempt_ended"] == ["retry", "succeeded"]
    assert [e["attempt"] for e in events if e["event"] == "attempt_started"] == [1, 2]
    assert next(e for e in events if e["event"] == "finished")["detail"] == {"status": "succeeded"}
    assert next(e for e in events if e["event"] == "webhook")["detail"]["status_code"] == 200
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    refused = tenant.get(f"/v1/generations/{job_id}?include=everything")
    assert refused.status_code == 400 and refused.json()["error"]["details"]["field"] == "include"
