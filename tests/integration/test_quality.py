"""The quality pipeline on the local stack: analyze → generate → verify, regenerating after a failed
verdict; each branch, its refunds, and a retried task resuming at its unfinished step."""

from __future__ import annotations

import base64
import io
import json
import time

import requests
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from lote.jobs import store
from lote.services import Services
from lote_local.stack import Stack
from tests.integration.conftest import ADMIN_TOKEN, Tenant

CREDITS = 100_000


def photo(knobs: str = "", color: tuple[int, int, int] = (210, 200, 190)) -> str:
    """A room photo as a data: URI; `knobs` ride in its `lote-knobs` PNG chunk."""
    info = PngInfo()
    if knobs:
        info.add_text("lote-knobs", knobs)
    out = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(out, format="PNG", pnginfo=info)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def model_stats(stack: Stack) -> dict[str, int]:
    """The offline model's counters (`requests`: image calls; `text:{step}`: text calls)."""
    return dict(requests.get(stack.url(stack.config.model_port) + "/stats", timeout=5).json())


def calls_of(stack: Stack, run_id: int) -> dict[str, int]:
    """The model calls made for one test's `run=ID` marker (other tests' work is not counted)."""
    stats = model_stats(stack)
    keys = {"requests": "requests", "text:analyze": "text:analyze", "text:verify": "text:verify"}
    return {name: stats.get(f"{key}:run={run_id}", 0) for name, key in keys.items()}


def run(tenant: Tenant, body: dict[str, object]) -> dict[str, object]:
    answer = tenant.post("/v1/generations", body)
    assert answer.status_code == 202, answer.text
    return tenant.wait(answer.json()["id"], timeout=60)


def test_a_preset_verifies_its_image_and_passes_the_first_time(tenant: Tenant, stack: Stack):
    run_id = time.time_ns()
    job = run(tenant, {"preset": "declutter", "images": [photo(f"run={run_id}")]})
    assert job["status"] == "succeeded", job
    quality = job["quality"]
    assert quality["passed"] and quality["regenerations"] == 0 and quality["score"] >= 0.7
    assert [c["name"] for c in quality["checks"]] == ["architecture_unchanged", "perspective_unchanged",
                                                      "no_artifacts_or_text", "clutter_removed"]  # fmt: skip
    assert quality["verifier_model"] == "gemini-2.5-flash"
    assert calls_of(stack, run_id) == {"requests": 1, "text:analyze": 0, "text:verify": 1}


def test_a_failed_verdict_regenerates_with_its_findings_then_passes(tenant: Tenant, stack: Stack):
    run_id = time.time_ns()
    job = run(tenant, {"prompt": f"a sunny kitchen [[verify=fail times=1 run={run_id}]]", "verify": True})
    assert job["status"] == "succeeded" and job["quality"]["passed"], job
    assert job["quality"]["regenerations"] == 1
    assert calls_of(stack, run_id) == {"requests": 2, "text:analyze": 0, "text:verify": 2}
    assert job["output"]["url"]


def test_an_image_that_never_passes_is_delivered_marked_or_refused_and_refunded(new_tenant, stack: Stack):
    tenant = new_tenant(credits=CREDITS)
    kept = run(tenant, {"prompt": f"a hall [[verify=fail run={time.time_ns()}]]", "verify": True,
                        "max_regenerations": 1})  # fmt: skip
    assert kept["status"] == "succeeded" and not kept["quality"]["passed"], kept
    assert kept["quality"]["regenerations"] == 1 and kept["quality"]["score"] < 0.7
    spent = CREDITS - tenant.get("/v1/account").json()["balance"]
    run_id = time.time_ns()
    refused = run(tenant, {"prompt": f"a hall [[verify=fail run={run_id}]]", "verify": True,
                           "max_regenerations": 0, "require_quality_pass": True})  # fmt: skip
    assert refused["status"] == "failed" and refused["error"]["code"] == "quality_rejected", refused
    assert calls_of(stack, run_id) == {"requests": 1, "text:analyze": 0, "text:verify": 1}
    assert CREDITS - tenant.get("/v1/account").json()["balance"] == spent  # the refused one refunded


def test_an_unsuitable_photo_is_refused_before_any_image_is_paid_for(new_tenant, stack: Stack):
    tenant = new_tenant(credits=CREDITS)
    run_id = time.time_ns()
    job = run(tenant, {"preset": "virtual-staging", "images": [photo(f"analyze=furnished run={run_id}")]})
    assert job["status"] == "failed" and job["error"]["code"] == "input_unsuitable", job
    assert "furnished" in job["error"]["message"]
    assert calls_of(stack, run_id) == {"requests": 0, "text:analyze": 1, "text:verify": 0}
    assert tenant.get("/v1/account").json()["balance"] == CREDITS  # refunded
    staged = run(tenant, {"preset": "virtual-staging", "images": [photo()]})
    assert staged["status"] == "succeeded" and staged["quality"]["passed"], staged


def test_a_retried_task_resumes_at_verify_without_a_second_image(tenant: Tenant, stack: Stack):
    for fault in ("timeout hang=5", "malformed"):  # the verifier stalls past the timeout; answers garbage
        run_id = time.time_ns()
        job = run(tenant, {"prompt": f"a study [[verify={fault} times=1 run={run_id}]]", "verify": True})
        assert job["status"] == "succeeded" and job["attempts"] == 2 and job["quality"]["passed"], job
        assert calls_of(stack, run_id) == {"requests": 1, "text:analyze": 0, "text:verify": 2}


def test_quality_options_are_checked_before_anything_is_written(tenant: Tenant):
    raised = tenant.post(
        "/v1/generations", {"preset": "declutter", "images": [photo()], "max_regenerations": 3}
    )
    assert raised.status_code == 400
    assert raised.json()["error"]["details"] == {"field": "max_regenerations", "maximum": 2}
    unverified = tenant.post("/v1/generations", {"prompt": "x", "require_quality_pass": True})
    assert unverified.status_code == 400
    assert unverified.json()["error"]["details"]["field"] == "require_quality_pass"


def test_a_text_model_quota_error_defers_the_job_without_an_attempt_or_the_image_pool(
    tenant: Tenant, stack: Stack, services: Services
):
    run_id = time.time_ns()
    job = run(tenant, {"prompt": f"a loft [[verify=429 delay=1 times=1 run={run_id}]]", "verify": True})
    assert job["status"] == "succeeded" and job["quality"]["passed"], job
    assert job["attempts"] == 1  # the attempt that met the 429 was not counted
    assert calls_of(stack, run_id) == {"requests": 1, "text:analyze": 0, "text:verify": 2}
    doc = store.ref(services.firestore.db, job["id"]).get().to_dict()
    assert doc["task_gen"] == 1  # it went on in a task of its own, after the model's RetryInfo delay
    # The attempt that only verified recorded its call in the text pool: the image pace never saw it.
    assert doc["call"]["pool"] == f"text:{services.settings.text_model}"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    view = tenant.get("/v1/admin/scheduler", headers=admin).json()
    assert view["text_pools"][0]["pool"] == doc["call"]["pool"]
    assert view["text_pools"][0]["last_minute"]["successes"] >= 1


def test_a_verifier_that_never_answers_leaves_the_image_unverified_or_refused_and_refunded(
    new_tenant, stack: Stack
):
    tenant = new_tenant(credits=CREDITS)
    run_id = time.time_ns()
    kept = run(tenant, {"prompt": f"a porch [[verify=malformed run={run_id}]]", "verify": True})
    assert kept["status"] == "succeeded" and kept["output"]["url"], kept  # the paid image is not lost
    quality = kept["quality"]
    assert not quality["passed"] and quality["checks"] == [] and "score" not in quality
    assert quality["unverified"].startswith("model_bad_response")
    assert calls_of(stack, run_id) == {"requests": 1, "text:analyze": 0, "text:verify": 3}  # 3 garbled
    spent = CREDITS - tenant.get("/v1/account").json()["balance"]
    refused = run(tenant, {"prompt": f"a porch [[verify=malformed run={time.time_ns()}]]", "verify": True,
                           "require_quality_pass": True})  # fmt: skip
    assert refused["status"] == "failed" and refused["error"]["code"] == "verifier_unavailable", refused
    assert CREDITS - tenant.get("/v1/account").json()["balance"] == spent  # refunded


def test_an_auto_room_type_is_what_the_analysis_saw_and_an_unfit_room_is_refused(new_tenant, stack: Stack):
    tenant = new_tenant(credits=CREDITS)
    staged = run(tenant, {"preset": "virtual-staging", "images": [photo("seen=dining_room")]})
    assert staged["status"] == "succeeded" and staged["params"]["room_type"] == "dining room", staged
    assert "stage this empty dining room" in staged["prompt"]
    run_id = time.time_ns()
    garage = run(tenant, {"preset": "virtual-staging", "images": [photo(f"seen=garage run={run_id}")]})
    assert garage["status"] == "failed" and garage["error"]["code"] == "input_unsuitable", garage
    assert "garage" in garage["error"]["message"] and "params.room_type" in garage["error"]["message"]
    assert calls_of(stack, run_id) == {"requests": 0, "text:analyze": 1, "text:verify": 0}
    asked = run(tenant, {"preset": "virtual-staging", "params": {"room_type": "office"},
                         "images": [photo("seen=garage")]})  # fmt: skip
    assert asked["status"] == "succeeded" and asked["params"]["room_type"] == "office"  # asked, not auto
    assert tenant.get("/v1/account").json()["balance"] == CREDITS - 2 * 2  # the refused one refunded


def test_batch_items_and_results_carry_quality_and_presets_say_their_steps_and_prices(tenant: Tenant):
    items = [{"reference": f"q{i}", "prompt": f"a bath {i} [[verify=fail times=1 run={time.time_ns()}]]",
              "verify": True} for i in range(2)]  # fmt: skip
    batch_id = tenant.post("/v1/batches", {"items": items}).json()["id"]
    deadline = time.monotonic() + 60
    while tenant.get(f"/v1/batches/{batch_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline, tenant.get(f"/v1/batches/{batch_id}").json()
        time.sleep(0.3)
    page = tenant.get(f"/v1/batches/{batch_id}/items").json()["items"]
    assert [i["quality"]["regenerations"] for i in page] == [1, 1] and all(
        i["quality"]["passed"] for i in page
    )
    lines = tenant.get(f"/v1/batches/{batch_id}/results.jsonl").text.splitlines()
    given = [{k: v for k, v in json.loads(line)["quality"].items() if v is not None} for line in lines]
    assert given == [i["quality"] for i in page]  # results.jsonl writes nulls out; the API leaves them
    presets = {p["name"]: p for p in tenant.get("/v1/presets").json()["presets"]}
    staging = presets["virtual-staging"]
    assert (
        staging["steps"] == ["analyze", "generate", "verify"] and staging["rubric"]["max_regenerations"] == 2
    )
    assert staging["price"] == 2 and sum(staging["step_prices"].values()) == 1500
    room = next(p for p in staging["params"] if p["name"] == "room_type")
    assert room["default"] == "auto" and room["auto_from"] == "analysis.room_type"


def test_a_cancel_between_steps_stops_the_calls_and_keeps_no_candidate(
    tenant: Tenant, stack: Stack, services: Services
):
    run_id = time.time_ns()
    answer = tenant.post(
        "/v1/generations", {"prompt": f"a den [[latency=1500 run={run_id}]]", "verify": True}
    )
    job_id = answer.json()["id"]
    deadline = time.monotonic() + 20
    while calls_of(stack, run_id)["requests"] < 1:  # the image call is under way
        assert time.monotonic() < deadline, tenant.get(f"/v1/generations/{job_id}").json()
        time.sleep(0.05)
    assert tenant.post(f"/v1/generations/{job_id}/cancel").status_code in (200, 202)
    job = tenant.wait(job_id)
    assert job["status"] == "canceled", job
    assert calls_of(stack, run_id) == {
        "requests": 1,
        "text:analyze": 0,
        "text:verify": 0,
    }  # verify never asked
    bucket = services.settings.output_bucket
    assert (
        services.storage.names(bucket, f"outputs/{tenant.tenant_id}/{job_id}") == []
    )  # its candidate deleted
