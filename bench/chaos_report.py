"""The chaos run's section of bench/RESULTS.md, and `make chaos`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from bench import machine

REPAIR_WORDS = {
    "requeued": "jobs whose worker died mid-attempt (lease expired) given a new task",
    "lost_tasks": "queued jobs whose task ran out of attempts given a new one",
    "enqueued": "jobs or fan-outs committed without a task given theirs",
    "abandoned": "jobs abandoned",
    "fanouts_resumed": "fan-outs resumed",
    "item_events_restarted": "item-event chains of canceled batches restarted",
    "webhooks_enqueued": "webhook deliveries committed without a task given theirs",
    "webhooks_requeued": "webhook deliveries whose task ran out of attempts given a new one",
    "webhooks_failed": "webhook deliveries failed",
}


def _counts(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in outcomes.items())


def section(f: dict[str, Any]) -> str:
    """Markdown: what was done to the stack, what each promise came to, and how recovery went."""
    size, forced, stranded = f["size"], f["forced"], f["api_died_after_commit"]
    kills = ", ".join(f"{k['service']} at {k['at_s']} s (healthy again {k['back_after_s']} s later)"
                      for k in f["kills"])  # fmt: skip
    repairs = f["sweep_repairs"]
    needed = "; ".join(f"{n:,} {REPAIR_WORDS[kind]}" for kind, n in repairs.items())
    audit = f["audit"]
    checked = ", ".join(f"{n:,} {what.replace('_', ' ')}" for what, n in audit["checked"].items())
    failed = sum(f["sweep_errors"].values())
    errors = ", ".join(f"{name} ×{n}" for name, n in f["sweep_errors"].items())
    locked = {"Aborted", "Contention"} & set(f["sweep_errors"])
    lines = [
        "## Chaos (issue 11)",
        "",
        f"`make chaos`, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine.describe()}. One "
        f"{size['items']:,}-item batch with item webhooks and {size['singles']} single generations with webhooks, "
        f"sent by {size['clients']} clients that retry the same Idempotency-Key on connection errors, 5xx and 429. "
        "One prompt in five carries a fault: 503 twice, a model call slower than the 2 s timeout once, "
        "a malformed answer once or every time (three in a row fail the job), a safety block. Queues from "
        f"tests/fixtures/queue.yaml (4 attempts, 0.2–1 s backoff); lease (dispatch deadline) {size['lease_s']} s; "
        f"`LOTE_REPAIR_AFTER_S` {size['repair_after_s']}; the repair sweep every {size['sweep_every_s']:g} s.",
        "",
        f"Chaos: SIGKILL of {kills}. Cloud Tasks was frozen (SIGSTOP) around the api's kill, so "
        f"{stranded['jobs'] - stranded['answered_before_the_kill']} submissions died after their commit and before "
        "their answer; "
        f"{forced['generation_tasks']} generation tasks and {forced['fanout_tasks']} fan-out tasks (plan, "
        f"chunks, checkers) were each delivered twice at once with RunTask ({forced['generation_runs'] + forced['fanout_runs']} "
        "RunTasks accepted).",
        "",
        "| promise | result |",
        "|---|---|",
        f"| images lost (accepted, but no job or not final) | {f['images_lost']} |",
        f"| duplicate jobs (jobs per Idempotency-Key beyond one) | {f['duplicate_jobs']} |",
        "| answers with another id than the first (during the run, and a replay of every key after it) "
        f"| {f['answers_not_the_first'] + f['replays_not_the_first']} |",
        f"| api died after commit: retries answered with the committed job | {stranded['answered_with_their_job']} of "
        f"{stranded['jobs'] - stranded['answered_before_the_kill']} ({stranded['lost']} answers lost; "
        f"{stranded['task_existed_after_restart']} had their task, {stranded['left_to_the_sweep']} left to the sweep) |",
        f"| double charges | {f['double_charges']} |",
        f"| refunds of failed singles (each exactly its price) | {f['single_refunds']} ({f['single_refunds_wrong']} wrong) |",
        f"| batch refund at completion | {f['batch_refund_entries']} entry, {f['batch_refunded']:,} credits (owed {f['batch_refund_owed']:,}) |",
        f"| balance = ledger | {f['balance']:,} = {f['ledger_sum']:,} |",
        f"| credits kept = price of the succeeded images | {f['credits_spent']:,} = {f['price_of_succeeded']:,} |",
        f"| batch completions | {f['batch_completions']} ({f['batch_status']}) |",
        f"| webhook events expected / produced / received | {f['events_expected']:,} / {f['event_documents']:,} / "
        f"{f['events_received']:,} ({f['events_missing']} missing, {f['events_unexpected']} unexpected) |",
        f"| webhook POSTs (same id again: at-least-once) | {f['webhook_posts']:,} ({f['duplicate_posts']} repeats) |",
        f"| invariant audit (`lote.audit.scan.audit`) | {'clean' if audit['ok'] else 'VIOLATIONS'}: "
        f"{audit['violations']} violations; checked {checked} |",
        "",
        f"Outcomes: items {_counts(f['items'])}; singles {_counts(f['singles'])}. Clients: "
        f"{f['clients']['retried_keys']} keys retried ({f['clients']['connection_errors']} connection errors, "
        f"{f['clients']['server_errors']} 5xx/429 answers).",
        "",
        f"Recovery: **{f['recovery_s']} s** from the last kill until every image, the batch and every webhook "
        f"were final ({f['wall_s']} s for the whole run). "
        + ("It needed the sweep: " if f["sweep_needed"] else "It did not need the sweep: ")
        + "; ".join(
            ([f"{stranded['left_to_the_sweep']} jobs whose CreateTask died with the api got their task only "
              "from it"] if stranded["left_to_the_sweep"] else [])
            + ([f"{f['sweep_passes']} passes that completed reported {needed}, the last "
                f"{f['sweep_last_repair_after_last_kill_s']} s after the last kill"] if repairs
               else [f"its {f['sweep_passes']} completed passes reported no repair"]))
        + " (a pass that fails reports nothing, so these counts are a lower bound)."
        + (f" {failed} sweep passes failed ({errors})." if failed else "")
        + (f" {f['sweep_skipped_busy']} times a pass found a document still locked by a transaction the killed "
           "worker never finished (the Firestore emulator keeps an abandoned transaction's locks for about 60 s, "
           "measured; Firestore releases them after 60 s idle too) and skipped it, repairing the rest; the next "
           "passes retried it. That lock, not the sweep, sets the recovery time."
           if f.get("sweep_skipped_busy") else "")
        + (" Failed passes were locked documents." if locked else "")
        + (f" The sweep's sampled audit logged {f['sweep_sample_violations']} `balance_equals_ledger` findings while "
           "work was accepted; the full audit at the end is clean." if f["sweep_sample_violations"] else "")
        + (f" Problems: {'; '.join(f['problems'])}." if f["problems"] else ""),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    """`make chaos`: the full run; its section replaces the old one in bench/RESULTS.md."""
    from bench import chaos
    from bench import run as bench_run

    figures = chaos.run(chaos.FULL)
    print(json.dumps(figures, indent=2, default=str))
    bench_run.write([section(figures)], subset=True)
    if figures["problems"]:
        print("chaos: promises broken: " + "; ".join(figures["problems"]), file=sys.stderr)
        sys.exit(1)
