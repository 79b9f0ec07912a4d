"""The chaos run's verdict: what Firestore, the ledger and the webhook receiver say happened, as
figures and a list of problems (empty when every promise held)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from bench.chaos_actors import Single
from lote import bulk
from lote.batches.store import BATCHES
from lote.billing import purse
from lote.billing.ledger import LEDGER
from lote.jobs.store import JOBS
from lote.services import Services
from lote.statuses import TERMINAL
from lote.tenants.store import TENANTS
from lote.webhooks.events import delivery_id
from lote.webhooks.store import DELIVERIES

KEY_FIELD = "chaos_key"  # metadata of each single: which client key it came from
ITEM_EVENTS = ("generation.succeeded", "generation.failed")


def _where(query: Any, name: str, op: str, value: Any) -> Any:
    from google.cloud.firestore import FieldFilter

    return query.where(filter=FieldFilter(name, op, value))


@dataclass(frozen=True)
class Progress:
    """Cheap counts (aggregations) that say whether the run has settled."""

    jobs: int
    open_jobs: int
    batch_finished: bool
    deliveries: int
    pending_deliveries: int


def progress(services: Services, tenant_id: str, batch_id: str) -> Progress:
    """Where the tenant's work stands, from count() queries."""
    db = services.firestore.db
    jobs = _where(db.collection(JOBS), "tenant_id", "==", tenant_id)
    deliveries = _where(db.collection(DELIVERIES), "tenant_id", "==", tenant_id)
    batch = db.collection(BATCHES).document(batch_id).get().to_dict() or {}
    return Progress(
        jobs=bulk.count(jobs),
        open_jobs=bulk.count(_where(jobs, "status", "in", ["queued", "running"])),
        batch_finished=batch.get("finished_at") is not None,
        deliveries=bulk.count(deliveries),
        pending_deliveries=bulk.count(_where(deliveries, "status", "==", "pending")),
    )


@dataclass(frozen=True)
class State:
    """Every document the verdict looks at."""

    jobs: dict[str, dict[str, Any]]
    batch: dict[str, Any]
    entries: dict[str, dict[str, Any]]
    credits: int
    deliveries: dict[str, str]  # id → status


def _balance(db: Any, tenant_id: str) -> int:
    """The whole balance: the tenant document's part and its purse slices'."""
    found = purse.read(db, tenant_id)
    return found.balance if found is not None else 0


def read(services: Services, tenant_id: str, batch_id: str) -> State:
    """The tenant's jobs, its batch, its ledger and its webhook deliveries, now."""
    db = services.firestore.db
    tenant = db.collection(TENANTS).document(tenant_id)
    fields = ["status", "batch_id", "task_gen", "error", "metadata", "price", "webhook_url"]
    jobs = _where(db.collection(JOBS), "tenant_id", "==", tenant_id).select(fields).stream()
    deliveries = _where(db.collection(DELIVERIES), "tenant_id", "==", tenant_id).select(["status"]).stream()
    return State(
        jobs={s.id: s.to_dict() or {} for s in jobs},
        batch=db.collection(BATCHES).document(batch_id).get().to_dict() or {},
        entries={s.id: s.to_dict() or {} for s in tenant.collection(LEDGER).stream()},
        credits=_balance(db, tenant_id),
        deliveries={s.id: str(s.get("status")) for s in deliveries},
    )


def expected_events(state: State, batch_id: str) -> set[str]:
    """The event ids the changes that happened must have produced: one per terminal job that asked
    for it (items: the batch's `webhook_events`), one per batch completion."""
    wanted = set()
    for job_id, job in state.jobs.items():
        kind = f"generation.{job.get('status')}"
        if job.get("status") in TERMINAL and (not job.get("batch_id") or kind in ITEM_EVENTS):
            wanted.add(delivery_id(job_id, kind, int(job.get("task_gen") or 0)))
    for completion in range(1, int(state.batch.get("completions") or 0) + 1):
        wanted.add(delivery_id(batch_id, "batch.completed", completion))
    return wanted


def outcome(job: dict[str, Any]) -> str:
    """`succeeded`, or the final status with its error code."""
    code = (job.get("error") or {}).get("code")
    return str(job.get("status")) + (f" ({code})" if code else "")


def _jobs(state: State, batch_id: str, items_total: int, singles: list[Single]) -> dict[str, Any]:
    items = [j for j in state.jobs.values() if j.get("batch_id") == batch_id]
    by_key: dict[str, list[str]] = defaultdict(list)
    for job_id, job in state.jobs.items():
        if not job.get("batch_id"):
            by_key[str((job.get("metadata") or {}).get(KEY_FIELD))].append(job_id)
    accepted = [s for s in singles if s.status == 202]
    open_jobs = sum(1 for j in state.jobs.values() if j.get("status") not in TERMINAL)
    keys = {s.key for s in singles}
    return {
        "items": dict(sorted(Counter(outcome(j) for j in items).items())),
        "singles": dict(sorted(Counter(outcome(j) for j in state.jobs.values() if not j.get("batch_id")).items())),
        "singles_not_accepted": len(singles) - len(accepted),
        # Accepted but without a job, or not final, or an item never created.
        "images_lost": sum(1 for s in accepted if not by_key.get(s.key)) + open_jobs + max(0, items_total - len(items)),
        "duplicate_jobs": sum(len(ids) - 1 for ids in by_key.values()) + sum(1 for k in by_key if k not in keys),
        "answers_not_the_first": sum(1 for s in accepted if by_key.get(s.key) != [s.job_id]),
    }  # fmt: skip


def _ledger(state: State, batch_id: str, initial: int) -> dict[str, Any]:
    singles = {i: j for i, j in state.jobs.items() if not j.get("batch_id")}

    def delta(entry_id: str) -> int:
        return int((state.entries.get(entry_id) or {}).get("delta", 0))

    # Entry ids derive from causes, so a double charge would be two entries for one cause.
    causes = Counter((e.get("reason"), e.get("reference")) for e in state.entries.values())
    owed = {
        i: int(j.get("price") or 0) if j.get("status") in ("failed", "canceled") else 0
        for i, j in singles.items()
    }
    batch_refunds = [e for i, e in state.entries.items() if i.startswith(f"refund-{batch_id}-")]
    kept = sum(int(j.get("price") or 0) for j in state.jobs.values() if j.get("status") == "succeeded")
    items_kept = sum(
        int(j.get("price") or 0)
        for j in state.jobs.values()
        if j.get("batch_id") == batch_id and j.get("status") == "succeeded"
    )
    return {
        "double_charges": sum(n - 1 for (reason, _), n in causes.items() if reason == "debit" and n > 1),
        "debits_missing_or_wrong": sum(delta(f"debit-{i}") != -int(j.get("price") or 0) for i, j in singles.items())
        + (delta(f"debit-{batch_id}") != -int(state.batch.get("charged") or 0)),
        "single_refunds": sum(1 for i in singles if f"refund-{i}" in state.entries),
        "single_refunds_wrong": sum(delta(f"refund-{i}") != owed[i] for i in singles),
        "batch_refund_entries": len(batch_refunds),
        "batch_refunded": sum(int(e.get("delta", 0)) for e in batch_refunds),
        "batch_refund_owed": int(state.batch.get("charged") or 0) - items_kept,
        "balance": state.credits,
        "ledger_sum": sum(int(e.get("delta", 0)) for e in state.entries.values()),
        "credits_spent": initial - state.credits,
        "price_of_succeeded": kept,
    }  # fmt: skip


def _events(state: State, batch_id: str, posts: Counter[str]) -> dict[str, Any]:
    expected = expected_events(state, batch_id)
    received = set(posts) - {""}
    return {
        "events_expected": len(expected),
        "event_documents": len(state.deliveries),
        "events_received": len(received & expected),
        "events_missing": len(expected - received) + len(expected - set(state.deliveries)),
        "events_unexpected": len((received | set(state.deliveries)) - expected),
        "webhook_posts": sum(posts.values()),
        "duplicate_posts": sum(n - 1 for n in posts.values() if n > 1),
        "deliveries_not_delivered": sum(1 for status in state.deliveries.values() if status != "delivered"),
    }


ZERO = ("singles_not_accepted", "images_lost", "duplicate_jobs", "answers_not_the_first", "double_charges",
        "debits_missing_or_wrong", "single_refunds_wrong", "events_missing", "events_unexpected",
        "deliveries_not_delivered")  # fmt: skip


def verdict(
    state: State, batch_id: str, items_total: int, singles: list[Single], posts: Counter[str], initial: int
) -> tuple[dict[str, Any], list[str]]:
    """Figures of the run and the broken promises (none, if lote kept them)."""
    figures = {
        **_jobs(state, batch_id, items_total, singles),
        **_ledger(state, batch_id, initial),
        "batch_status": state.batch.get("status"),
        "batch_completions": int(state.batch.get("completions") or 0),
        **_events(state, batch_id, posts),
    }
    problems = [f"{name}: {figures[name]}" for name in ZERO if figures[name]]
    if (
        figures["balance"] != figures["ledger_sum"]
        or figures["credits_spent"] != figures["price_of_succeeded"]
    ):
        problems.append(f"balance {figures['balance']}, ledger {figures['ledger_sum']}, "
                        f"succeeded images cost {figures['price_of_succeeded']} of {initial}")  # fmt: skip
    if (figures["batch_status"], figures["batch_completions"]) != ("completed", 1):
        problems.append(f"batch {figures['batch_status']} with {figures['batch_completions']} completions")
    owed = figures["batch_refund_owed"]
    if figures["batch_refunded"] != owed or figures["batch_refund_entries"] != (1 if owed else 0):
        problems.append(f"batch refunded {figures['batch_refunded']} of {owed} owed "
                        f"in {figures['batch_refund_entries']} entries")  # fmt: skip
    return figures, problems
