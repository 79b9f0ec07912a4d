"""The invariants as pure functions: documents in, violations out (no I/O here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from lote.jobs.documents import job_of
from lote.jobs.recovery import cycle_start
from lote.statuses import TERMINAL, UNPAID, JobStatus
from lote.usage import rules as usage_rules
from lote.webhooks.events import delivery_id


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which, about what, and the facts that show it."""

    invariant: str
    subject: str
    tenant_id: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class Windows:
    """How long each kind of pending work may legitimately wait before it is a violation."""

    repair_after: dt.timedelta
    abandon_after: dt.timedelta


def ledger_balance(tenant_id: str, credits: int, ledger_sum: int) -> list[Violation]:
    """The balance is the sum of the ledger."""
    if credits == ledger_sum:
        return []
    return [
        Violation("balance_equals_ledger", tenant_id, tenant_id, {"credits": credits, "ledger": ledger_sum})
    ]


def purse(
    tenant_id: str, slots_lent: int, slices: dict[int, dict[str, Any]], singles: dict[int, int] | None
) -> list[Violation]:
    """A purse's slices (billing/purse.py) hold what was lent to them and nothing below zero: no
    slice overdrawn, every slot lent accounted for, and each slice's `in_use` is exactly the single
    generations admitted through it that are still queued or running (`singles`; None when they
    were not read, as by the sweep's sample)."""
    found = []
    for index, held in sorted(slices.items()):
        if held["credits"] < 0 or not 0 <= held["in_use"] <= held["slots"]:
            found.append(
                Violation("purse_slice_not_overdrawn", f"{tenant_id}/{index}", tenant_id, dict(held))
            )
        if singles is not None and held["in_use"] != singles.get(index, 0):
            found.append(Violation("purse_slot_per_single_in_flight", f"{tenant_id}/{index}", tenant_id,
                                   {"in_use": held["in_use"], "singles": singles.get(index, 0)}))  # fmt: skip
    for index, count in sorted((singles or {}).items()):
        if index not in slices:
            found.append(Violation("purse_slot_per_single_in_flight", f"{tenant_id}/{index}", tenant_id,
                                   {"in_use": 0, "singles": count}))  # fmt: skip
    held_slots = sum(h["slots"] for h in slices.values())
    if held_slots != slots_lent:
        found.append(Violation("purse_slots_lent_held", tenant_id, tenant_id,
                               {"slots_lent": slots_lent, "held": held_slots}))  # fmt: skip
    return found


def spend_counted(
    tenant_id: str, spend: dict[str, Any], slices: dict[int, dict[str, Any]], day_charged: int,
    month_charged: int,
) -> list[Violation]:  # fmt: skip
    """Under a spend cap (billing/spend.py) every credit of room the tenant document handed out for a
    day is charged that day or still held for it by a purse slice, and the same for the month: what
    keeps the caps exact while singles spend room without reading the tenant document. No slice
    holds negative room."""
    day = str(spend.get("day") or "")
    held_day = sum(int(h.get("room") or 0) for h in slices.values() if h.get("room_day") == day)
    held_month = sum(
        int(h.get("room") or 0) for h in slices.values() if str(h.get("room_day"))[:7] == day[:7]
    )
    found = []
    day_out, month_out = int(spend.get("day_out") or 0), int(spend.get("month_out") or 0)
    if day_charged + held_day != day_out or month_charged + held_month != month_out:
        found.append(Violation("spend_counted", tenant_id, tenant_id, {
            "day": day, "day_out": day_out, "day_charged": day_charged, "day_held": held_day,
            "month_out": month_out, "month_charged": month_charged, "month_held": held_month}))  # fmt: skip
    for index, held in sorted(slices.items()):
        if int(held.get("room") or 0) < 0:
            found.append(
                Violation("spend_counted", f"{tenant_id}/{index}", tenant_id, {"room": held["room"]})
            )
    return found


def usage_rollups(tenant_id: str, day: str, shard: int, day_doc: dict[str, Any] | None,
                  hours: list[dict[str, Any]]) -> list[Violation]:  # fmt: skip
    """A usage rollup shard (usage/store.py) agrees with itself: its day counts what its hours count
    (both are incremented in the commit that ends each job, so they can never differ), each group's
    images are its succeeded, failed and canceled ones, and nothing is refunded beyond its charge."""
    found = []
    summed: dict[str, Any] = {}
    for hour in hours:
        usage_rules.merge(summed, hour)
    counted = usage_rules.counts_of(day_doc or {})
    by_hours = usage_rules.counts_of(summed)
    if counted != by_hours:
        detail = {"day": counted.get("all"), "hours": by_hours.get("all")}
        found.append(Violation("usage_rollups_agree", f"{tenant_id}:{day}:{shard}", tenant_id, detail))
    for group, counts in usage_rules.groups_of(day_doc or {}):
        statuses = sum(int(counts.get(k, 0)) for k in ("succeeded", "failed", "canceled"))
        if statuses != int(counts.get("images", 0)) or int(counts.get("refunded", 0)) > int(
            counts.get("charged", 0)
        ):
            found.append(Violation("usage_rollups_agree", f"{tenant_id}:{day}:{shard}:{group}", tenant_id,
                                   {k: counts.get(k) for k in usage_rules.COUNTS}))  # fmt: skip
    return found


def debit_has_its_cause(
    entry_id: str, entry: dict[str, Any], tenant_id: str, cause_exists: bool
) -> list[Violation]:
    """Every debit pays for a job or a batch that exists (TTL may delete finished ones later)."""
    if entry.get("reason") != "debit" or cause_exists:
        return []
    return [
        Violation("debit_has_its_job_or_batch", entry_id, tenant_id, {"reference": entry.get("reference")})
    ]


def stripe_payment(
    payment_id: str, doc: dict[str, Any], entries: dict[str, dict[str, Any]], tenant_id: str
) -> list[Violation]:
    """A Stripe payment's credits: what refunds and standing chargebacks took is between nothing
    and what it bought, and each chargeback (and its return) is in the ledger for what it took."""
    found: list[Violation] = []
    bought, clawed = int(doc.get("credits") or 0), int(doc.get("clawed_back") or 0)
    disputes = doc.get("disputes") or {}
    standing = sum(int(d.get("taken", 0)) for d in disputes.values() if not d.get("returned"))
    if not 0 <= clawed + standing <= bought:
        found.append(Violation("stripe_payment_takes_at_most_what_it_bought", payment_id, tenant_id,
                               {"credits": bought, "clawed_back": clawed, "disputed": standing}))  # fmt: skip
    for dispute_id, dispute in sorted(disputes.items()):
        taken = int(dispute.get("taken", 0))
        expected = {f"dispute-{dispute_id}": -taken} if taken else {}
        if taken and dispute.get("returned"):
            expected[f"dispute-return-{dispute_id}"] = taken
        for entry_id, delta in expected.items():
            seen = (entries.get(entry_id) or {}).get("delta")
            if seen != delta:
                found.append(Violation("dispute_in_the_ledger", f"{payment_id}/{dispute_id}", tenant_id,
                                       {"entry": entry_id, "expected": delta, "found": seen}))  # fmt: skip
    return found


def job(
    job_id: str,
    doc: dict[str, Any],
    now: dt.datetime,
    windows: Windows,
    refund: dict[str, Any] | None,
    outputs: list[str],
    deliveries: set[str],
    task_exists: bool | None,
) -> list[Violation]:
    """A job: terminal in time, with a task while it is not; refunded exactly when it must be;
    exactly one output object when it succeeded and none otherwise; its webhook event produced.

    `refund` is the ledger entry `refund-{job}` (singles only), `outputs` the objects named after the
    job, `deliveries` the ids of the deliveries whose subject is the job, `task_exists` whether its
    current task exists, or for a held job whether its lane is active (None when not looked up).
    """
    found: list[Violation] = []
    tenant = str(doc.get("tenant_id"))

    def add(invariant: str, **detail: Any) -> None:
        found.append(Violation(invariant, job_id, tenant, {"status": doc.get("status"), **detail}))

    status = doc.get("status")
    created = cycle_start(job_of(doc)) if doc.get("created_at") else now
    if status not in TERMINAL:
        in_model_batch = bool(doc.get("model_batch")) and (doc.get("lease_until") or now) > now
        if now - created > windows.abandon_after + windows.repair_after and not in_model_batch:
            add("job_terminal_in_time", created_at=created.isoformat())
        queued = status == JobStatus.QUEUED
        held = bool(doc.get("hold"))
        if queued and held and task_exists is False:
            add("job_has_a_task", reason="held in a lane the dispatcher does not read", lane=doc.get("hold"))
        if queued and not held and not doc.get("enqueued") and now - created > 2 * windows.repair_after:
            add("job_has_a_task", reason="never enqueued")
        if doc.get("enqueued") and doc.get("task_check_at") is None:
            add("job_has_a_task", reason="enqueued without a check time: no sweep would see its task go")
        if queued and doc.get("enqueued") and task_exists is False:
            add("job_has_a_task", reason="its task no longer exists", task_gen=doc.get("task_gen"))
        lease = doc.get("lease_until")
        if status == JobStatus.RUNNING and lease is not None and now - lease > windows.repair_after:
            add("job_has_a_task", reason="lease expired", lease_until=lease.isoformat())
    price = int(doc.get("price") or 0)
    if not doc.get("batch_id") and price > 0:
        # Failed or canceled: its price back; succeeded with a reused image: its discount back.
        discount = int(doc.get("discount") or 0) if status == JobStatus.SUCCEEDED else 0
        owed = price if status in UNPAID else discount
        if owed and (refund is None or int(refund.get("delta", 0)) != owed):
            add("refunded_exactly_once", price=price, owed=owed,
                refund=None if refund is None else refund.get("delta"))  # fmt: skip
        if not owed and refund is not None:
            add("refunded_exactly_once", price=price, refund=refund.get("delta"), reason="not owed")
    if doc.get("reused_from") and not str((doc.get("output") or {}).get("object", "")).startswith(
        f"outputs/{tenant}/"
    ):
        add("reuse_stays_in_its_tenant", output=(doc.get("output") or {}).get("object"))
    expected = (doc.get("output") or {}).get("object") if status == JobStatus.SUCCEEDED else None
    if expected is not None and outputs != [expected]:
        add("one_output_per_success", expected=expected, found=outputs)
    if expected is None and outputs and status in TERMINAL:
        add("one_output_per_success", expected=None, found=outputs)
    found.extend(_job_event(job_id, doc, deliveries))
    return found


def expected_event(job_id: str, doc: dict[str, Any]) -> str | None:
    """The id of the delivery the job's current terminal state must have produced (None: none asked)."""
    status = doc.get("status")
    if status not in TERMINAL or not doc.get("webhook_url"):
        return None
    kind = f"generation.{status}"
    wanted = doc.get("webhook_events")
    if wanted is not None and kind not in wanted:
        return None
    return delivery_id(job_id, kind, int(doc.get("task_gen") or 0))


def _job_event(job_id: str, doc: dict[str, Any], deliveries: set[str]) -> list[Violation]:
    expected = expected_event(job_id, doc)
    if expected is None or expected in deliveries:
        return []
    detail = {"type": f"generation.{doc.get('status')}", "missing": expected}
    return [Violation("one_event_per_change", job_id, str(doc.get("tenant_id")), detail)]


def batch_cancel(batch_id: str, doc: dict[str, Any], now: dt.datetime, windows: Windows) -> list[Violation]:
    """A canceled batch's queued items are canceled within the repair window (batches/cancel.py
    pages through them; the sweep restarts a lost chain): `cancel_pending` does not linger."""
    at = doc.get("canceled_at")
    if not doc.get("cancel_pending") or at is None or now - at <= 3 * windows.repair_after:
        return []
    return [Violation("batch_cancel_completes", batch_id, str(doc.get("tenant_id")), {"canceled_at": at})]


def batch_retry(batch_id: str, doc: dict[str, Any], now: dt.datetime, windows: Windows) -> list[Violation]:
    """A large batch's retry goes through its items within the repair window (batches/retry.py
    pages through them; the sweep restarts a lost chain): `retry_pending` does not linger."""
    at = (doc.get("retry_pending") or {}).get("requested_at")
    if at is None or now - at <= 3 * windows.repair_after:
        return []
    return [Violation("batch_retry_completes", batch_id, str(doc.get("tenant_id")), {"requested_at": at})]


def batch(
    batch_id: str,
    doc: dict[str, Any],
    tally: dict[str, int],
    chunks_done: int,
    entries: dict[str, dict[str, Any]],
    succeeded_price: int,
    deliveries: set[str],
) -> list[Violation]:
    """A batch: every item exists once fanned out; finished exactly when every item is terminal;
    charged what its debits say and refunded, once per completion, all but its succeeded items."""
    found: list[Violation] = []
    tenant = str(doc.get("tenant_id"))

    def add(invariant: str, **detail: Any) -> None:
        found.append(Violation(invariant, batch_id, tenant, {"status": doc.get("status"), **detail}))

    total = int(doc.get("total") or 0)
    items = sum(tally.values())
    fanned_out = chunks_done >= len(doc.get("chunks") or [])
    if fanned_out and items != total:
        add("batch_items_exist", total=total, items=items)
    open_items = tally.get(JobStatus.QUEUED, 0) + tally.get(JobStatus.RUNNING, 0)
    finished = doc.get("finished_at") is not None
    if finished and open_items:
        add("batch_counts_match_items", reason="finished with open items", open=open_items)
    if not finished and fanned_out and items >= total and not open_items:
        add("batch_counts_match_items", reason="every item is terminal but the batch is not finished")
    completions = int(doc.get("completions") or 0)
    if finished and completions < 1:
        add("batch_completion_once", completions=completions)
    debits = -sum(int(e["delta"]) for i, e in entries.items() if i.startswith(f"debit-{batch_id}"))
    refunds = sum(int(e["delta"]) for i, e in entries.items() if i.startswith(f"refund-{batch_id}-"))
    if debits != int(doc.get("charged") or 0) or refunds != int(doc.get("refunded") or 0):
        add("refunded_exactly_once", charged=doc.get("charged"), debits=debits,
            refunded=doc.get("refunded"), refunds=refunds)  # fmt: skip
    if finished and debits - refunds != succeeded_price:
        add("refunded_exactly_once", reason="kept more or less than its succeeded items cost",
            kept=debits - refunds, succeeded_price=succeeded_price)  # fmt: skip
    if doc.get("webhook_url"):
        for completion in range(1, completions + 1):
            ids = {delivery_id(batch_id, kind, completion) for kind in ("batch.completed", "batch.canceled")}
            if len(ids & deliveries) != 1:
                add("one_event_per_change", completion=completion, found=sorted(ids & deliveries))
    return found


def dispatcher_alive(
    pool: str, active_lanes: int, last_run: dt.datetime | None, now: dt.datetime, windows: Windows
) -> list[Violation]:
    """Held work has a dispatcher: with any lane active, a tick ran within the repair window."""
    if active_lanes == 0 or (last_run is not None and now - last_run <= 2 * windows.repair_after):
        return []
    detail = {"active_lanes": active_lanes, "last_run": last_run.isoformat() if last_run else None}
    return [Violation("held_work_is_dispatched", pool, "", detail)]


def client_token(token_id: str, doc: dict[str, Any], submitted: int) -> list[Violation]:
    """A client token has counted exactly the images submitted with it (its singles, and the items
    of its batches), and never more than its cap."""
    images, cap = int(doc.get("images") or 0), doc.get("max_images")
    if images == submitted and (cap is None or images <= int(cap)):
        return []
    detail = {"images": images, "submitted": submitted, "max_images": cap}
    return [Violation("token_images_are_counted", token_id, str(doc.get("tenant_id")), detail)]


def reuse_record(record_id: str, doc: dict[str, Any], source: dict[str, Any] | None) -> list[Violation]:
    """A reuse record (reuse/): its tenant's own, in its id and in the image it points at, and that
    image the output of a job of the same tenant that succeeded (`source`, None when deleted)."""
    found: list[Violation] = []
    tenant = str(doc.get("tenant_id"))
    if not record_id.startswith(f"{tenant}:"):
        found.append(Violation("reuse_stays_in_its_tenant", record_id, tenant, {"reason": "id"}))
    if doc.get("source"):
        obj = str((doc.get("output") or {}).get("object", ""))
        if not obj.startswith(f"outputs/{tenant}/"):
            found.append(Violation("reuse_stays_in_its_tenant", record_id, tenant, {"output": obj}))
        if source is not None and (
            source.get("tenant_id") != tenant or source.get("status") != JobStatus.SUCCEEDED
        ):
            detail = {"source": doc.get("source"), "source_status": source.get("status")}
            found.append(Violation("reuse_stays_in_its_tenant", record_id, tenant, detail))
    return found


def model_batch_watched(
    mb_id: str, doc: dict[str, Any], now: dt.datetime, windows: Windows
) -> list[Violation]:
    """A model batch job (batchmode/) that has not ended is never left unwatched: its submission or
    next look is due no longer than twice the repair window ago (the sweep restarts it after one)."""
    check_at = doc.get("check_at")
    if doc.get("ended") or (check_at is not None and now - check_at <= 2 * windows.repair_after):
        return []
    detail = {"state": doc.get("state"), "check_at": check_at.isoformat() if check_at else None}
    return [Violation("model_batch_is_watched", mb_id, "", detail)]


def job_in_model_batch(
    job_id: str, doc: dict[str, Any], model_batch: dict[str, Any] | None
) -> list[Violation]:
    """A job running as a request of a model batch job has that model batch job, not ended (its
    line lands once, or the job goes back online, before the model batch job ends)."""
    ref = doc.get("model_batch")
    if doc.get("status") != JobStatus.RUNNING or not ref:
        return []
    if model_batch is not None and not model_batch.get("ended"):
        return []
    detail = {"model_batch": ref, "found": None if model_batch is None else model_batch.get("state")}
    return [Violation("model_batch_holds_its_jobs", job_id, str(doc.get("tenant_id")), detail)]
