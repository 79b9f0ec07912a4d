"""Reading the state the invariants are about: a tenant at a time, or the repair sweep's sample."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lote import logs, tasks, timeutil
from lote.access import store as access_store
from lote.audit import rules
from lote.audit.rules import Violation, Windows
from lote.batches import store as batch_store
from lote.batchmode import store as batch_mode_store
from lote.billing import ledger, purse
from lote.billing import spend as spend_rules
from lote.billing.ledger import LEDGER
from lote.billing.stripe_events import PAYMENTS
from lote.dispatch import lanes
from lote.dispatch import service as dispatch
from lote.dispatch import state as dispatch_state
from lote.jobs.store import JOBS
from lote.reuse import store as reuse_store
from lote.services import Services
from lote.statuses import IN_FLIGHT, JobStatus
from lote.tenants.store import TENANTS
from lote.usage import rules as usage_rules
from lote.usage import store as usage_store
from lote.webhooks.store import DELIVERIES

log = logging.getLogger("lote.audit")
PARALLEL = 8
SETTLE_TRIES = 8


@dataclass
class Report:
    """What was looked at and what is wrong; `ok` when nothing is."""

    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No invariant is broken."""
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        """The report as `lote-admin audit` prints it."""
        summary: dict[str, int] = defaultdict(int)
        for violation in self.violations:
            summary[violation.invariant] += 1
        return {
            "ok": self.ok,
            "checked": dict(self.checked),
            "summary": dict(summary),
            "violations": [v.as_dict() for v in self.violations],
        }


def _windows(services: Services) -> Windows:
    s = services.settings
    return Windows(dt.timedelta(seconds=s.repair_after_s), dt.timedelta(seconds=s.abandon_after_s))


def _where(collection: Any, name: str, value: Any) -> Any:
    from google.cloud.firestore import FieldFilter

    return collection.where(filter=FieldFilter(name, "==", value))


def audit(services: Services, tenant_id: str | None = None) -> Report:
    """Every invariant, for one tenant or for all of them."""
    db = services.firestore.db
    report = Report()
    if tenant_id is not None:
        tenant_ids = [tenant_id]
    else:
        tenant_ids = [s.id for s in db.collection(TENANTS).select([]).stream()]
    for one in tenant_ids:
        _tenant(services, one, report)
    now, windows = timeutil.now(), _windows(services)
    for pool in (dispatch.pool(services.settings), lanes.BATCH_MODE):
        last_run = (dispatch_state.load(db, pool) or {}).get("run_at")
        active = len(lanes.active(db, pool))
        report.violations += rules.dispatcher_alive(pool, active, last_run, now, windows)
    for snapshot in batch_mode_store.overdue(
        db, now - 2 * windows.repair_after, services.settings.sweep_limit
    ):
        report.checked["model_batches"] += 1
        report.violations += rules.model_batch_watched(snapshot.id, snapshot.to_dict() or {}, now, windows)
    return report


def _task_exists(services: Services, job_id: str, job: dict[str, Any]) -> bool | None:
    if job.get("status") == JobStatus.QUEUED and job.get("hold"):
        if lanes.lane_states(services.firestore.db, {job["hold"]}).get(job["hold"]):
            return True
        # Released meanwhile (and its lane retired): only a job still held there is stranded.
        return _job_now(services, job_id).get("hold") != job["hold"]
    if job.get("status") != JobStatus.QUEUED or not job.get("enqueued"):
        return None
    if tasks.exists(services, tasks.Generate(job_id=job_id, gen=int(job.get("task_gen") or 0))):
        return True
    # The task may have just run: only a job still queued at the same generation has lost it.
    again = _job_now(services, job_id)
    return not (again.get("status") == JobStatus.QUEUED and again.get("task_gen") == job.get("task_gen"))


def _job_now(services: Services, job_id: str) -> dict[str, Any]:
    """A job's document now ({} when gone)."""
    return services.firestore.db.collection(JOBS).document(job_id).get().to_dict() or {}


@dataclass(frozen=True)
class _Balance:
    """A tenant (None when gone), its purse slices, the in-flight singles admitted through each,
    its ledger entries (when all were read), the ledger's sum, and whether the read settled
    (_snapshot)."""

    tenant: dict[str, Any] | None
    slices: dict[int, dict[str, Any]]
    singles: dict[int, int] | None  # None when not read (the sweep's sample)
    entries: dict[str, dict[str, Any]]
    total: int
    settled: bool
    charged: tuple[int, int] | None = None  # debits of the spend counts' day and month, under a cap

    @property
    def credits(self) -> int:
        """The whole balance: the tenant document's part and its slices'."""
        return int((self.tenant or {}).get("credits", 0)) + sum(s["credits"] for s in self.slices.values())

    def violations(self, tenant_id: str, report: Report) -> list[Violation]:
        """`balance_equals_ledger` and the purse's rules, judged only on a settled read (else
        counted unsettled)."""
        if not self.settled:
            report.checked["balances_unsettled"] += 1  # too busy to read at one instant: next time
            return []
        if self.tenant is None:
            return []
        report.checked["purse_slices"] += len(self.slices)
        lent = int(self.tenant.get("slots_lent", 0))
        found = rules.ledger_balance(tenant_id, self.credits, self.total) + rules.purse(
            tenant_id, lent, self.slices, self.singles
        )
        if self.charged is not None:
            spend = self.tenant.get("spend") or {}
            found += rules.spend_counted(tenant_id, spend, self.slices, *self.charged)
        return found


def _slice_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """A purse slice as the rules judge it: its counts, and its spend-cap room and the room's day."""
    fields: dict[str, Any] = {k: int(doc.get(k, 0)) for k in ("credits", "slots", "in_use")}
    fields["room"], fields["room_day"] = doc.get("room"), str(doc.get("room_day") or "")
    return fields


def _charged(db: Any, tenant_id: str, tenant: dict[str, Any], tx: Any) -> tuple[int, int] | None:
    """Under a spend cap, the debits of the day and of the month its counts are for (two aggregation
    queries in the snapshot's transaction); None without a cap, or in the first minute of a UTC day,
    when a debit staged just before midnight may carry the new day's time."""
    stored = tenant.get("spend") or {}
    if not spend_rules.caps_of(tenant).capped or not stored.get("day"):
        return None
    now = timeutil.now()
    if now - spend_rules.day_start(spend_rules.day_key(now)) < dt.timedelta(minutes=1):
        return None
    day = str(stored["day"])
    month = day[:7]
    day_debits = ledger.summed(
        db, tenant_id, "debit", spend_rules.day_start(day), spend_rules.next_day(day), tx
    )
    month_debits = ledger.summed(db, tenant_id, "debit", spend_rules.month_start(month),
                                 spend_rules.next_month(month), tx)  # fmt: skip
    return -day_debits, -month_debits


def _snapshot(services: Services, tenant_id: str, whole_ledger: bool) -> _Balance:
    """The tenant, its purse slices and its ledger at one instant (read apart, a debit committed in
    between would look like a broken balance): for the whole audit every entry and the singles in
    flight through each slice; for the sweep's sample only the ledger's sum (a busy tenant's
    in-flight singles, read in every retry of the snapshot, made 40 samples take a minute)."""
    from google.cloud import firestore as fs

    db = services.firestore.db
    tenant_ref = db.collection(TENANTS).document(tenant_id)
    ledger_ref = tenant_ref.collection(LEDGER)
    slices_ref = tenant_ref.collection(purse.SLICES)
    in_flight = (
        _where(_where(db.collection(JOBS), "tenant_id", tenant_id), "batch_id", None)
        .where(filter=fs.FieldFilter("status", "in", list(IN_FLIGHT)))
        .select(["purse_slice"])
    )

    def times(snapshots: Any) -> dict[str, Any]:
        return {s.reference.path: s.update_time for s in snapshots}

    def read(tx: Any) -> tuple[dict[str, Any], _Balance]:
        tenant = tenant_ref.get(transaction=tx)
        slices = list(slices_ref.stream(transaction=tx))
        singles: dict[int, int] | None = None
        if whole_ledger:
            singles = defaultdict(int)
            for job in in_flight.stream(transaction=tx):
                index = (job.to_dict() or {}).get("purse_slice")
                if index is not None:
                    singles[int(index)] += 1
            entries = {s.id: s.to_dict() or {} for s in ledger_ref.stream(transaction=tx)}
            total = sum(int(e.get("delta", 0)) for e in entries.values())
        else:
            entries, total = {}, int(ledger_ref.sum("delta", alias="s").get(transaction=tx)[0][0].value or 0)
        held = {int(s.id): _slice_fields(s.to_dict() or {}) for s in slices}
        counted = None if singles is None else dict(singles)
        charged = _charged(db, tenant_id, tenant.to_dict() or {}, tx)
        found = _Balance(tenant.to_dict(), held, counted, entries, total, settled=False, charged=charged)
        return times([tenant, *slices]), found

    # A read-only transaction reads at one instant in Firestore, but the emulator can show a commit
    # that is still being applied to one read and not to the other (the CI saw credits = ledger + 1
    # once in ~1,200 samples). Every ledger entry, and every change of a single's slot, is committed
    # with a write to the tenant or one of its slices, so: retry until their update times are the
    # same after the reads (a seqlock), and believe a mismatch only when a second settled read shows
    # it too; a real one never goes away.
    settled_mismatches = 0
    for _ in range(SETTLE_TRIES):
        updated, found = fs.transactional(read)(db.transaction(read_only=True))
        after = times([tenant_ref.get(field_paths=["credits"]), *slices_ref.select(["credits"]).stream()])
        if after != updated:
            continue
        found = dataclasses.replace(found, settled=True)
        if not found.violations(tenant_id, Report()):
            return found
        settled_mismatches += 1
        if settled_mismatches == 2:
            return found
        found = dataclasses.replace(found, settled=False)
    # Never settled twice on one answer (the tenant is busy): not a finding either way this time.
    return found


def _tenant(services: Services, tenant_id: str, report: Report) -> None:
    db = services.firestore.db
    balance = _snapshot(services, tenant_id, whole_ledger=True)
    tenant, entries = balance.tenant, balance.entries
    if tenant is None:
        return
    now = timeutil.now()
    report.checked["tenants"] += 1
    report.checked["ledger_entries"] += len(entries)
    report.violations += balance.violations(tenant_id, report)
    jobs = {s.id: s.to_dict() or {} for s in _where(db.collection(JOBS), "tenant_id", tenant_id).stream()}
    batches = {
        s.id: s.to_dict() or {}
        for s in _where(db.collection(batch_store.BATCHES), "tenant_id", tenant_id).stream()
    }
    deliveries: dict[str, set[str]] = defaultdict(set)
    for snapshot in _where(db.collection(DELIVERIES), "tenant_id", tenant_id).select(["subject"]).stream():
        deliveries[str(snapshot.get("subject"))].add(snapshot.id)
    outputs: dict[str, list[str]] = defaultdict(list)
    for name in services.storage.names(services.settings.output_bucket, f"outputs/{tenant_id}/"):
        outputs[name.rsplit("/", 1)[-1].split(".", 1)[0]].append(name)
    retention = dt.timedelta(days=services.settings.retention_days)
    for entry_id, entry in entries.items():
        reference = str(entry.get("reference"))
        expired = now - (entry.get("created_at") or now) > retention  # its cause may be gone by TTL
        cause = reference in jobs or reference in batches or expired
        report.violations += rules.debit_has_its_cause(entry_id, entry, tenant_id, cause)
    for day in {
        usage_rules.period_key(now - dt.timedelta(days=1), "day"),
        usage_rules.period_key(now, "day"),
    }:
        for shard, (day_doc, hours) in usage_store.shards_of_day(db, tenant_id, day).items():
            report.checked["usage_rollups"] += 1
            report.violations += rules.usage_rollups(tenant_id, day, shard, day_doc, hours)
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        tasks = dict(zip(jobs, pool.map(lambda j: _task_exists(services, j, jobs[j]), jobs), strict=True))
    windows = _windows(services)
    model_batches = _model_batches(db, jobs)
    for job_id, doc in jobs.items():
        report.checked["jobs"] += 1
        mb_id = (doc.get("model_batch") or {}).get("id")
        report.violations += rules.job_in_model_batch(
            job_id, doc, model_batches.get(mb_id) if mb_id else None
        )
        report.violations += rules.job(
            job_id, doc, now, windows, entries.get(f"refund-{job_id}"), sorted(outputs.get(job_id, [])),
            deliveries.get(job_id, set()), tasks[job_id],
        )  # fmt: skip
    for batch_id, doc in batches.items():
        report.checked["batches"] += 1
        _batch(services, batch_id, doc, entries, deliveries.get(batch_id, set()), report)
    submitted: dict[str, int] = defaultdict(int)
    for doc in jobs.values():
        if doc.get("token_id") and doc.get("batch_id") is None:
            submitted[doc["token_id"]] += 1
    for doc in batches.values():
        if doc.get("token_id"):
            submitted[doc["token_id"]] += int(doc.get("total") or 0)
    for snapshot in _where(db.collection(access_store.COLLECTION), "tenant_id", tenant_id).stream():
        report.checked["client_tokens"] += 1
        report.violations += rules.client_token(snapshot.id, snapshot.to_dict() or {}, submitted[snapshot.id])
    for snapshot in _where(db.collection(PAYMENTS), "tenant_id", tenant_id).stream():
        report.checked["stripe_payments"] += 1
        report.violations += rules.stripe_payment(snapshot.id, snapshot.to_dict() or {}, entries, tenant_id)
    for snapshot in _where(db.collection(reuse_store.REUSE), "tenant_id", tenant_id).stream():
        report.checked["reuse_records"] += 1
        record = snapshot.to_dict() or {}
        source = str(record.get("source") or "")
        known = jobs.get(source) if source else None
        report.violations += rules.reuse_record(snapshot.id, record, known)


def _model_batches(db: Any, jobs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The model batch documents the running jobs name (read at once)."""
    ids = sorted({str(d["model_batch"]["id"]) for d in jobs.values() if d.get("model_batch")
                  and d.get("status") == JobStatus.RUNNING})  # fmt: skip
    found = db.get_all([batch_mode_store.ref(db, mb_id) for mb_id in ids]) if ids else []
    return {s.id: s.to_dict() or {} for s in found if s.exists}


def _batch(
    services: Services,
    batch_id: str,
    doc: dict[str, Any],
    entries: dict[str, dict[str, Any]],
    deliveries: set[str],
    report: Report,
) -> None:
    db = services.firestore.db
    tally = batch_store.counts(db, batch_id)
    succeeded_price = batch_store.succeeded_price(db, batch_id)
    report.violations += rules.batch(
        batch_id, doc, tally, batch_store.chunks_done(db, batch_id), entries, succeeded_price, deliveries
    )
    report.violations += rules.batch_cancel(batch_id, doc, timeutil.now(), _windows(services))
    report.violations += rules.batch_retry(batch_id, doc, timeutil.now(), _windows(services))


def sample(services: Services, size: int) -> Report:
    """The sweep's check: the jobs that finished most recently and their tenants' balances."""
    from google.cloud import firestore as fs

    db = services.firestore.db
    report = Report()
    now = timeutil.now()
    query = db.collection(JOBS).order_by("finished_at", direction=fs.Query.DESCENDING).limit(size)
    jobs = {s.id: s.to_dict() or {} for s in query.stream()}
    tenants = {str(doc.get("tenant_id")) for doc in jobs.values()}
    for tenant_id in tenants:
        report.checked["tenants"] += 1
        report.violations += _snapshot(services, tenant_id, whole_ledger=False).violations(tenant_id, report)
    ledger_refs = [
        db.collection(TENANTS).document(str(d["tenant_id"])).collection(LEDGER).document(f"refund-{j}")
        for j, d in jobs.items()
    ]
    refunds = {
        f"{s.reference.parent.parent.id}:{s.id}": s.to_dict() or {} for s in _existing(db, ledger_refs)
    }
    # One batched read for the deliveries the sampled jobs must have produced (not a query per job).
    expected = [e for e in (rules.expected_event(j, d) for j, d in jobs.items()) if e]
    delivered = {s.id for s in _existing(db, [db.collection(DELIVERIES).document(e) for e in expected])}
    windows = _windows(services)

    def stored(doc: dict[str, Any]) -> list[str]:
        name = (doc.get("output") or {}).get("object")
        return [name] if name and services.storage.exists(services.settings.output_bucket, name) else []

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:  # one Storage request per job, not in series
        found = dict(zip(jobs, pool.map(stored, jobs.values()), strict=True))
    model_batches = _model_batches(db, jobs)
    for job_id, doc in jobs.items():
        report.checked["jobs"] += 1
        mb_id = (doc.get("model_batch") or {}).get("id")
        report.violations += rules.job_in_model_batch(
            job_id, doc, model_batches.get(mb_id) if mb_id else None
        )
        outputs = found[job_id]
        ids = delivered & {rules.expected_event(job_id, doc)}
        refund = refunds.get(f"{doc.get('tenant_id')}:refund-{job_id}")
        report.violations += rules.job(job_id, doc, now, windows, refund, outputs, ids, None)
    return report


def _existing(db: Any, refs: list[Any]) -> list[Any]:
    """The documents among `refs` that exist, in one batched read (none for no refs)."""
    return [s for s in db.get_all(refs) if s.exists] if refs else []


def log_violations(report: Report) -> None:
    """One structured line per violation; the Terraform log metric `audit_violations` counts them."""
    for violation in report.violations:
        found = violation.as_dict()
        logs.emit(log, logging.ERROR, "audit.violation", "invariant violated %s", compact(found),
                  invariant=found.get("invariant"), subject=found.get("subject"))  # fmt: skip


def compact(data: dict[str, Any]) -> str:
    """Compact JSON (datetimes as ISO strings)."""
    import json

    return json.dumps(data, default=str, separators=(",", ":"), sort_keys=True)
