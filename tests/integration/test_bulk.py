"""bulk.write against the Firestore emulator: every write is accounted for, or the step fails."""

from __future__ import annotations

import uuid

import pytest
from google.cloud.firestore import FieldFilter

from lote import bulk
from lote.services import Services


def test_a_write_the_server_refuses_whole_fails_the_step(services: Services):
    # A reserved field name makes the emulator refuse the whole BatchWrite; the writer used to
    # log that and move on, so a fan-out chunk was marked done without its jobs.
    db = services.firestore.db
    prefix = uuid.uuid4().hex[:8]
    good = [(db.collection("bulk-test").document(f"{prefix}-{n}"), {"n": n}) for n in range(5)]
    bad = (db.collection("bulk-test").document(f"{prefix}-bad"), {"metadata": {"__x__": "1"}})
    with pytest.raises(bulk.BulkWriteError):
        bulk.write(db, creates=[*good, bad])


def test_creates_of_existing_documents_are_refused_not_failed(services: Services):
    db = services.firestore.db
    ref = db.collection("bulk-test").document(uuid.uuid4().hex)
    assert bulk.write(db, creates=[(ref, {"n": 1})]).written == {ref.id}
    again = bulk.write(db, creates=[(ref, {"n": 2})])
    assert again.written == set() and again.refused == {ref.id: bulk.ALREADY_EXISTS}
    assert ref.get().to_dict() == {"n": 1}


def test_counts_at_one_read_time_see_one_snapshot(services: Services):
    # A batch's tally is five counts; read at five times, an item moving between them was counted
    # zero times or twice. Counted at the first one's read time, a later change is not seen.
    db = services.firestore.db
    col = db.collection(f"bulk-count-{uuid.uuid4().hex[:8]}")
    col.document("a").set({"s": "queued"})
    queued = col.where(filter=FieldFilter("s", "==", "queued"))
    running = col.where(filter=FieldFilter("s", "==", "running"))
    n, at = bulk.counted(queued)
    col.document("a").set({"s": "running"})
    assert (n, bulk.counted(running, at)[0]) == (1, 0)
    assert (bulk.count(queued), bulk.count(running)) == (0, 1)


def test_a_query_of_two_sums_counts_only_documents_holding_both_fields(services: Services):
    # Why a batch's kept price is two aggregations (batches/store.succeeded_price): one query of
    # two sums left out every item without a discount, and a batch gave back what it had made.
    db = services.firestore.db
    col = db.collection(f"bulk-sum-{uuid.uuid4().hex[:8]}")
    col.document("made").set({"price": 1})
    col.document("reused").set({"price": 1, "discount": 1})
    both = col.sum("price", alias="p").sum("discount", alias="d").get()
    assert {r.alias: r.value for r in both[0]} == {"p": 1, "d": 1}
    assert col.sum("price", alias="p").get()[0][0].value == 2
