"""The chaos run, small (bench/chaos.py; `make chaos` runs it full size): the worker SIGKILLed
twice, the api killed after its commits, duplicate task deliveries forced, model faults throughout;
afterwards nothing is lost or doubled, credits and events add up, and the audit is clean."""

from __future__ import annotations

from bench import chaos


def test_a_small_chaos_run_keeps_every_promise():
    figures = chaos.run(chaos.SMALL)
    assert figures["problems"] == [], figures
    killed = [kill["service"] for kill in figures["kills"]]
    assert (killed.count("worker"), killed.count("api")) == (2, 1)
    assert figures["forced"]["generation_tasks"] >= 10 and figures["forced"]["fanout_tasks"] >= 2
    stranded = figures["api_died_after_commit"]
    assert stranded["answered_with_their_job"] >= 1 and stranded["lost"] == 0
    assert stranded["answered_with_their_job"] + stranded["answered_before_the_kill"] == stranded["jobs"]
    assert (figures["images_lost"], figures["duplicate_jobs"], figures["double_charges"]) == (0, 0, 0)
    assert figures["answers_not_the_first"] == figures["replays_not_the_first"] == 0
    assert figures["single_refunds_wrong"] == 0 and figures["batch_refund_entries"] == 1
    assert figures["balance"] == figures["ledger_sum"]
    assert figures["credits_spent"] == figures["price_of_succeeded"]
    assert (figures["batch_status"], figures["batch_completions"]) == ("completed", 1)
    assert figures["events_expected"] == figures["event_documents"] == figures["events_received"]
    assert (figures["events_missing"], figures["events_unexpected"], figures["deliveries_not_delivered"]) == (
        0,
        0,
        0,
    )
    assert figures["audit"]["ok"] and figures["audit"]["violations"] == 0
    # Killed inside its verify call, the pipeline resumed there: its image was not paid twice.
    crash = figures["pipeline_crash"]
    assert (crash["status"], crash["image_calls"], crash["verify_calls"]) == ("succeeded", 1, 2), crash
