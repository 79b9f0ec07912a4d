"""Economy work through Gemini's batch mode: gather held items into model batch jobs, submit each,
look at it until it ends, land its lines (rules.py has the rules, store.py the writes).

- `tick` (a dispatch tick of the batch-mode pool): the held items of the batch-mode lanes, by model,
  become model batch jobs of up to LOTE_BATCH_MODE_FLUSH_ITEMS requests, or fewer once the oldest
  has waited LOTE_BATCH_MODE_FLUSH_S, at most LOTE_BATCH_MODE_MAX_JOBS in flight.
- `submit`: the requests' images up through the Files API (by reference, not inline), one JSONL line
  per job keyed `{job}-{task_gen}`, the batch job created (or found, if a crash came after creating
  it), then the first look.
- `poll`: Gemini's state; until it ends, the next look (30 s doubling to 5 min); once it ends, each
  line becomes the attempt's Outcome through the same path as an online attempt (jobs/outcome.py,
  jobs/worker.settle: classification, refunds, webhooks); a job with no line, or of a model batch job
  that failed, expired or ran past LOTE_BATCH_MODE_DEADLINE_S, goes back to online dispatch with
  its attempt uncounted. A job whose cancel was requested is canceled, and when every job of a model
  batch job asked for it, the model batch job is canceled at Gemini too.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter, defaultdict
from dataclasses import replace
from functools import partial
from typing import Any

from lote import ids, tasks, timeutil
from lote.answers import Answer
from lote.batches import store as batch_store
from lote.batchmode import rules, store
from lote.batchmode.documents import ModelBatchDoc
from lote.batchmode.rules import State
from lote.clients import model_batches
from lote.clients.model import ModelFailure, ModelOperatorTrouble, ModelPermanent
from lote.dispatch import lanes, spend, state
from lote.dispatch import service as dispatch
from lote.jobs import inputs, outcome, outputs, pipeline, worker
from lote.jobs.documents import JobDoc, job_of
from lote.jobs.outcome import End, Outcome
from lote.reuse import rules as reuse
from lote.services import Services
from lote.statuses import JobStatus

log = logging.getLogger("lote.batchmode")
POOL = lanes.BATCH_MODE
LATE_S = 60.0  # a look not come this long after it was due is the repair sweep's to restart


def tick(services: Services, window: int) -> Answer:
    """One window of the gatherer: held requests into model batch jobs; the next tick while any
    batch-mode lane holds work."""
    s, db = services.settings, services.firestore.db
    now = services.clock()
    # The pool's document keeps what else it holds (the spend of landed lines).
    current, fresh = state.advance(db, POOL, window, lambda previous: {**(previous or {}), "pool": POOL,
                                                                        "run_at": now})  # fmt: skip
    if current is None or not fresh:
        return Answer(200, {"result": "noop", "reason": "this window already ran"})
    room = s.batch_mode_max_jobs - store.in_flight(db)
    held: dict[str, list[Any]] = defaultdict(list)
    active = lanes.active(db, POOL)
    for lane in active if room > 0 else []:  # no room: nothing to read until a model batch job ends
        found = lanes.held(db, lane.id, s.batch_mode_flush_items)
        if not found:
            lanes.retire(db, lane.id)
        for job in found:
            held[str(job.get("model"))].append(job)
    made = 0
    lease = dt.timedelta(seconds=s.batch_mode_deadline_s + 3600)  # the lease frees a lost one's jobs
    for model, jobs in sorted(held.items()):
        for start in range(0, len(jobs), s.batch_mode_flush_items):
            group = jobs[start : start + s.batch_mode_flush_items]
            oldest = min((j.get("created_at") for j in group if j.get("created_at")), default=None)
            if room <= 0 or not rules.flush(len(group), oldest, now, s.batch_mode_flush_items,
                                             s.batch_mode_flush_s):  # fmt: skip
                continue
            mb_id = ids.derived_id("mb", f"{window}:{model}:{start}")
            due = now + dt.timedelta(seconds=s.task_dispatch_deadline_s + LATE_S)  # its submission's time
            if store.gather(db, mb_id, model, group, now, lease, due):
                tasks.create(services, tasks.SubmitModelBatch(mb=mb_id))
                room, made = room - 1, made + 1
    if active:
        # Held requests wait minutes for a flush, not a control window: a tick about every tenth
        # of the flush age (at most 30 s), so waiting items are not read again every window.
        clock = services.clock().timestamp()
        period = max(s.dispatch_window_s, min(30.0, s.batch_mode_flush_s / 10))
        following = max(window + 1, dispatch.window_at(s, clock + period))
        tasks.create(services, tasks.Dispatch(pool=POOL, window=following),
                     max(0.0, following * s.dispatch_window_s - clock))  # fmt: skip
    return Answer(200, {"result": "gathered", "model_batches": made, "lanes": len(active)})


def submit(services: Services, mb_id: str, gen: int = 0) -> Answer:
    """Send a gathered model batch job to Gemini and schedule its first look. Only the submission
    the document names (`submit_gen`) runs: one the sweep replaced is a noop, so two never create."""
    s, db = services.settings, services.firestore.db
    found = store.get(db, mb_id)
    if found is None or found.get("state") != State.GATHERED or int(found.get("submit_gen") or 0) != gen:
        return Answer(200, {"result": "noop", "reason": "not waiting for this submission"})
    jobs = store.jobs_of(db, mb_id)
    try:
        name = model_batches.find(services.model, mb_id)
        if name is None:
            lines, fingerprints = _lines(services, jobs)
            if not lines:
                store.end(db, mb_id, timeutil.now(), None, {"empty": 1})
                return Answer(200, {"result": "empty"})
            store.mark(db, mb_id, {"fingerprints": fingerprints})  # recorded with each landed image
            file_name, _ = model_batches.upload(services.model, _jsonl(lines), "application/jsonl", mb_id)
            name = model_batches.create(services.model, str(found["model"]), file_name, mb_id)
    except (ModelOperatorTrouble, ModelPermanent) as exc:
        # Batch mode refuses this deployment or this request: online dispatch makes the images.
        log.warning("model batch %s not accepted (%s): its %d jobs go online", mb_id, exc.code, len(jobs))
        sent = _back_online(services, jobs, exc.code, exc.message)
        store.end(db, mb_id, timeutil.now(), None, {"back_online": sent})
        return Answer(200, {"result": "back_online", "code": exc.code})
    except ModelFailure as exc:  # throttled (batch mode's own quota) or transient: the queue retries
        # ...and the sweep leaves it to the queue meanwhile (a replaced submission could create twice).
        store.mark(
            db,
            mb_id,
            {"check_at": timeutil.now() + dt.timedelta(seconds=s.task_dispatch_deadline_s + LATE_S)},
        )
        return Answer(503, {"result": "retry", "code": exc.code}, {"Retry-After": "30"})
    now = timeutil.now()
    store.submitted(db, mb_id, name, now, now + dt.timedelta(seconds=s.batch_mode_poll_s + LATE_S))
    tasks.create(services, tasks.PollModelBatch(mb=mb_id, seq=1), s.batch_mode_poll_s)
    log.info("model batch %s submitted as %s (%d requests)", mb_id, name, len(jobs))
    return Answer(200, {"result": "submitted", "name": name, "requests": len(jobs)})


def _lines(services: Services, jobs: list[Any]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One request line per job, its images uploaded once each (by content) and referred to; and the
    fingerprints of the images they make (reuse/). A job whose input cannot be used fails as its
    online attempt would; one whose image an identical request made is delivered it, not sent."""
    s = services.settings
    uploaded: dict[str, tuple[str, str]] = {}
    lines, fingerprints = [], {}
    lease = dt.timedelta(seconds=s.batch_mode_deadline_s)
    for snapshot in jobs:
        job = job_of(snapshot.to_dict())
        try:
            loaded = inputs.load(services, job)
        except inputs.InputError as exc:
            worker.settle(services, snapshot.id, job, outcome.of_error(_facts(services, job), exc))
            continue
        if reuse.wanted(job) and s.reuse_ttl_s > 0:
            fingerprint = reuse.fingerprint(job, [ids.sha256_hex(data) for data, _ in loaded])
            facts = partial(_facts, services, job)
            found = worker.look_up(services, snapshot.id, job, fingerprint, facts, lease)
            if found is not None and found.end is End.SUCCEEDED:
                worker.settle(services, snapshot.id, job, found)
                continue
            if found is None:  # this job makes it (an identical one in flight: it makes its own)
                fingerprints[snapshot.id] = fingerprint
        parts: list[dict[str, Any]] = [{"text": job["prompt"]}]
        for data, mime in loaded:
            digest = ids.sha256_hex(data)
            if digest not in uploaded:
                uploaded[digest] = (model_batches.upload(services.model, data, mime, digest[:40])[1], mime)
            uri, mime_type = uploaded[digest]
            parts.append({"fileData": {"fileUri": uri, "mimeType": mime_type}})
        config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        if job.get("aspect_ratio"):
            config["imageConfig"] = {"aspectRatio": job["aspect_ratio"]}
        ref = job.get("model_batch")
        key = ref["key"] if ref else rules.key_of(snapshot.id, int(job.get("task_gen") or 0))
        lines.append({"key": key, "request": {"contents": [{"role": "user", "parts": parts}],
                                              "generationConfig": config}})  # fmt: skip
    return lines, fingerprints


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)


def poll(services: Services, mb_id: str, seq: int) -> Answer:
    """Look at a submitted model batch job: the next look while it runs, its lines landed once it
    ended."""
    db = services.firestore.db
    found = store.get(db, mb_id)
    if found is None or found.get("ended") or int(found.get("poll_seq") or 0) != seq:
        return Answer(200, {"result": "noop", "reason": "not the look that is due"})
    try:
        now_state = model_batches.get(services.model, str(found["name"]))
    except ModelFailure as exc:
        return Answer(503, {"result": "retry", "code": exc.code}, {"Retry-After": "30"})
    jobs = store.jobs_of(db, mb_id)
    unwanted = _unwanted(db, jobs)
    # A job whose batch was canceled meanwhile is canceled (refunded), whatever its line says.
    ended = Counter(_settle(services, job, outcome.canceled()) for job in jobs if job.id in unwanted)
    jobs = [job for job in jobs if job.id not in unwanted]
    now = timeutil.now()
    if not now_state.ended:
        return _running(services, mb_id, found, seq, now_state.state, jobs, now)
    if now_state.state == model_batches.SUCCEEDED and now_state.output_file:
        data = model_batches.download(services.model, now_state.output_file)
        ended += _land(services, jobs, data, dict(found.get("fingerprints") or {}))
    else:
        code = f"model_batch_{now_state.state.removeprefix('JOB_STATE_').lower()}"
        ended["back_online"] += _back_online(services, jobs, code, f"the model batch job ended {code}")
    store.end(db, mb_id, now, now_state.state, dict(ended))
    log.info("model batch %s ended %s: %s", mb_id, now_state.state, dict(ended))
    return Answer(200, {"result": "ended", "state": now_state.state, **ended})


def _running(
    services: Services, mb_id: str, found: ModelBatchDoc, seq: int, model_state: str, jobs: list[Any],
    now: dt.datetime,
) -> Answer:  # fmt: skip
    s, db = services.settings, services.firestore.db
    late = rules.past_deadline(found.get("submitted_at"), now, s.batch_mode_deadline_s)
    if (not jobs or late) and not found.get("cancel_asked"):
        # Nobody wants its images any more (their jobs were canceled above), or it ran too long:
        # Gemini is asked to stop it (best effort), and a late one's jobs go online at once.
        model_batches.cancel(services.model, str(found["name"]))
        store.mark(db, mb_id, {"cancel_asked": True})
        if jobs:
            said = "the model batch job ran past its deadline"
            sent = _back_online(services, jobs, "model_batch_deadline", said)
            store.end(db, mb_id, now, model_state, {"back_online": sent})
            return Answer(200, {"result": "deadline", "back_online": sent})
    delay = rules.next_poll_s(seq, s.batch_mode_poll_s)
    if store.next_look(db, mb_id, seq, now + dt.timedelta(seconds=delay + LATE_S), model_state):
        tasks.create(services, tasks.PollModelBatch(mb=mb_id, seq=seq + 1), delay)
    return Answer(200, {"result": "running", "state": model_state, "next_s": delay})


def _unwanted(db: Any, jobs: list[Any]) -> set[str]:
    """The jobs whose image is no longer wanted: their cancel was requested, or their batch's."""
    batch_ids = sorted({str(job.get("batch_id")) for job in jobs if job.get("batch_id")})
    found = db.get_all([batch_store.ref(db, batch_id) for batch_id in batch_ids]) if batch_ids else []
    canceled = {b.id for b in found if b.exists and (b.to_dict() or {}).get("cancel_requested")}
    return {job.id for job in jobs if job.get("cancel_requested") or job.get("batch_id") in canceled}


def _land(services: Services, jobs: list[Any], data: bytes, fingerprints: dict[str, str]) -> Counter[str]:
    """Each output line finishes its job as an online attempt's answer would; a job without a line
    goes back online."""
    by_id = {snapshot.id: snapshot for snapshot in jobs}
    ended: Counter[str] = Counter()
    spent: dict[str, dict[str, dict[str, int]]] = {}
    for line in model_batches.lines(data):
        key = str(line.get("key") or "")
        snapshot = by_id.pop(rules.job_of_key(key), None)
        if snapshot is None or (snapshot.get("model_batch") or {}).get("key") != key:
            ended["stale_lines"] += 1  # a job gone on meanwhile (restarted online, or landed before)
            continue
        answer = _answer(services, snapshot, line)
        if snapshot.id in fingerprints:  # its image is the fingerprint's once committed (or released)
            answer = replace(answer, fingerprint=fingerprints[snapshot.id])
        written = _settle(services, snapshot, answer)
        ended[written] += 1
        tokens = (answer.update.get("call") or {}).get("spend")
        if written == JobStatus.SUCCEEDED and tokens:
            spend.add(spent.setdefault(str(snapshot.get("tier")), {}), tokens)
    if spent:  # the admin view's spend by tier, priced at batch mode's share (dispatch/spend.py)
        state.add_spend(services.firestore.db, POOL, timeutil.now(), spent)
    if by_id:
        ended["back_online"] += _back_online(services, list(by_id.values()), "model_batch_line_missing",
                                             "the model batch job's output had no line for it")  # fmt: skip
    return ended


def _answer(services: Services, snapshot: Any, line: dict[str, Any]) -> Outcome:
    """A line as the attempt's outcome: the image stored, or its failure as online; a failure that
    does not end the job (throttled, transient) sends it back online, its attempt uncounted."""
    job = job_of(snapshot.to_dict())
    facts = _facts(services, job)
    try:
        image = model_batches.read_line(line)
        output, created = outputs.store(services, snapshot.id, job, image.data)
    except ModelFailure as exc:
        ended = outcome.of_error(facts, exc)
        if ended.end in (End.FAILED, End.CANCELED, End.NOOP):
            return ended
        return outcome.held(facts, exc.code, exc.message, ended.update.get("call"), online=True)
    usage = {"generate": {"model": job["model"], "calls": 1, "ms": 0, **image.usage}}
    return outcome.succeeded(facts, pipeline.Result(output, None, usage, 0, created, 1))


def _back_online(services: Services, jobs: list[Any], code: str, message: str) -> int:
    """Send jobs of a model batch job back to online dispatch, their attempts uncounted (a job
    whose cancel was requested is canceled instead, by the settle)."""
    sent = 0
    for snapshot in jobs:
        facts = _facts(services, job_of(snapshot.to_dict()))
        sent += _settle(services, snapshot, outcome.held(facts, code, message, None, online=True)) == "held"
    return sent


def _settle(services: Services, snapshot: Any, ended: Outcome) -> str:
    """Commit one job's outcome as a worker would (jobs/worker.settle); what it was written as."""
    answer = worker.settle(services, snapshot.id, job_of(snapshot.to_dict()), ended)
    return str(answer.body.get("result"))


def _facts(services: Services, job: JobDoc) -> outcome.Attempt:
    """A request line's attempt: the one its gathering started, drawing on batch mode's own quota
    (the online pool's pace and breaker are not its business)."""
    s = services.settings
    return outcome.Attempt(job=job, number=int(job.get("attempts") or 0), last=False, retried=False,
                           now=timeutil.now(), took_ms=0, image_pool=POOL, text_pool=dispatch.text_pool(s),
                           online_pool=dispatch.pool(s))  # fmt: skip


def restart_overdue(services: Services, limit: int) -> int:
    """The repair sweep's part: a model batch whose submission or next look is overdue (its task
    lost) gets a new one. Returns how many."""
    db, now = services.firestore.db, timeutil.now()
    restarted = 0
    for snapshot in store.overdue(db, now, limit):
        due = now + dt.timedelta(seconds=LATE_S + services.settings.batch_mode_poll_s)
        found = store.restart(db, snapshot.id, due)
        if found is None:
            continue
        if found.get("state") == State.GATHERED:
            gen = int(found.get("submit_gen") or 0)
            tasks.create(services, tasks.SubmitModelBatch(mb=snapshot.id, gen=gen))
        else:
            tasks.create(services, tasks.PollModelBatch(mb=snapshot.id, seq=int(found.get("poll_seq") or 0)))
        restarted += 1
    return restarted
