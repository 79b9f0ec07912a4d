"""When an image already made is delivered again (reuse/rules.py), and what it costs."""

from __future__ import annotations

import datetime as dt

from lote.audit import rules as audit
from lote.billing import credits
from lote.reuse import rules
from lote.reuse.rules import Kind

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)
JOB = {"tenant_id": "ten_a", "model": "gemini-2.5-flash-image", "prompt": "a room", "preset": None,
       "params": {}, "aspect_ratio": None, "output_format": "png", "quality_request": None}  # fmt: skip


def test_identical_requests_share_a_fingerprint_and_any_difference_changes_it():
    base = rules.fingerprint(JOB, ["aa", "bb"])
    assert rules.fingerprint(dict(JOB), ["aa", "bb"]) == base
    changed = [
        rules.fingerprint({**JOB, "tenant_id": "ten_b"}, ["aa", "bb"]),  # tenants never share
        rules.fingerprint(JOB, ["bb", "aa"]),  # the inputs' order matters to the model
        rules.fingerprint(JOB, ["aa", "cc"]),
        rules.fingerprint({**JOB, "prompt": "a room "}, ["aa", "bb"]),
        rules.fingerprint({**JOB, "output_format": "webp"}, ["aa", "bb"]),
        rules.fingerprint({**JOB, "aspect_ratio": "16:9"}, ["aa", "bb"]),
        rules.fingerprint({**JOB, "model": "gemini-3-pro-image-preview"}, ["aa", "bb"]),
        rules.fingerprint({**JOB, "quality_request": {"verify": True}}, ["aa", "bb"]),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    # What does not change the image does not change the fingerprint.
    assert (
        rules.fingerprint({**JOB, "metadata": {"k": "v"}, "webhook_url": "https://x"}, ["aa", "bb"]) == base
    )


def test_a_preset_job_is_keyed_by_the_preset_definition_and_its_params():
    staged = {**JOB, "preset": "virtual-staging", "params": {"style": "modern"}}
    other = {**staged, "params": {"style": "scandinavian"}}
    assert rules.fingerprint(staged, ["aa"]) != rules.fingerprint(other, ["aa"])
    assert rules.record_id("ten_a", "f") == "ten_a:f"


def test_a_record_is_a_hit_a_wait_or_this_jobs_to_make():
    made = {"source": "gen_1", "output": {"object": "o"}, "until": NOW + dt.timedelta(days=1)}
    assert rules.judge(made, "gen_2", NOW).kind is Kind.HIT
    assert rules.judge({**made, "until": NOW}, "gen_2", NOW).kind is Kind.GO  # too old
    assert rules.judge(made, "gen_1", NOW).kind is Kind.GO  # its own: made again (a retry)
    making = {"owner": "gen_1", "owner_until": NOW + dt.timedelta(minutes=5)}
    assert rules.judge(making, "gen_2", NOW) == rules.Found(Kind.WAIT, owner="gen_1")
    assert rules.judge(making, "gen_1", NOW).kind is Kind.GO  # its maker, looking again
    assert rules.judge({**making, "owner_until": NOW}, "gen_2", NOW).kind is Kind.GO  # the maker is gone
    assert rules.judge(None, "gen_2", NOW).kind is Kind.GO


def test_a_fresh_image_is_made_when_asked_or_once_a_step_was_paid():
    assert rules.wanted(JOB) and rules.wanted({**JOB, "reuse": True})
    assert not rules.wanted({**JOB, "reuse": False})
    assert not rules.wanted({**JOB, "pipeline": {"analysis": {}}})


def test_a_record_is_usable_within_the_ttl_and_never_past_the_outputs_retention():
    assert rules.usable_until(NOW, 3600, 30) == NOW + dt.timedelta(hours=1)
    assert rules.usable_until(NOW, 90 * 86400, 30) == NOW + dt.timedelta(days=29)


def test_a_reused_image_costs_its_reuse_share_and_gives_the_rest_back():
    assert rules.discount(4, 0) == 4
    assert rules.discount(4, 25) == 3
    assert rules.discount(3, 50) == 1  # 1.5 kept, rounded half up to 2
    assert rules.discount(3, 100) == 0
    single = {"price": 4}
    assert credits.end_refund(single, {"status": "succeeded", "discount": 4}, unpaid=False) == 4
    assert credits.end_refund(single, {"status": "failed"}, unpaid=True) == 4
    assert credits.end_refund(single, {"status": "succeeded"}, unpaid=False) == 0
    item = {"price": 4, "batch_id": "bat_1"}  # its batch settles it
    assert credits.end_refund(item, {"status": "succeeded", "discount": 4}, unpaid=False) == 0


def _job(**fields: object) -> dict[str, object]:
    return {"tenant_id": "ten_a", "status": "succeeded", "price": 4, "created_at": NOW, **fields}


def test_the_audit_holds_a_reused_single_to_its_discount_refund():
    windows = audit.Windows(dt.timedelta(hours=1), dt.timedelta(minutes=5))
    out = {"object": "outputs/ten_a/gen_2.png"}
    doc = _job(reused_from="gen_1", discount=4, output=out)
    ok = audit.job("gen_2", doc, NOW, windows, {"delta": 4}, [out["object"]], set(), None)
    assert ok == []
    missing = audit.job("gen_2", doc, NOW, windows, None, [out["object"]], set(), None)
    assert [v.invariant for v in missing] == ["refunded_exactly_once"]
    foreign = _job(reused_from="gen_1", discount=0, output={"object": "outputs/ten_b/gen_2.png"})
    found = audit.job("gen_2", foreign, NOW, windows, None, ["outputs/ten_b/gen_2.png"], set(), None)
    assert "reuse_stays_in_its_tenant" in [v.invariant for v in found]


def test_the_audit_keeps_reuse_records_in_their_tenant():
    record = {"tenant_id": "ten_a", "source": "gen_1", "output": {"object": "outputs/ten_a/gen_1.png"}}
    assert audit.reuse_record("ten_a:f", record, {"tenant_id": "ten_a", "status": "succeeded"}) == []
    assert audit.reuse_record("ten_b:f", record, None)[0].invariant == "reuse_stays_in_its_tenant"
    stolen = audit.reuse_record("ten_a:f", record, {"tenant_id": "ten_b", "status": "succeeded"})
    assert [v.invariant for v in stolen] == ["reuse_stays_in_its_tenant"]
