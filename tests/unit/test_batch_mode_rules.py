"""Batch mode's rules (batchmode/rules.py): when held items make a model batch job, how often one is
looked at, what a line's key names."""

from __future__ import annotations

import datetime as dt

from lote.batchmode import rules
from lote.clients import model_batches

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def test_a_full_group_flushes_at_once_and_a_partial_one_once_its_oldest_waited():
    assert rules.flush(50, NOW, NOW, 50, 300)
    assert not rules.flush(10, NOW - dt.timedelta(seconds=299), NOW, 50, 300)
    assert rules.flush(10, NOW - dt.timedelta(seconds=300), NOW, 50, 300)
    assert not rules.flush(0, NOW - dt.timedelta(hours=1), NOW, 50, 300)


def test_looks_double_from_the_first_up_to_five_minutes():
    assert [rules.next_poll_s(seq, 30) for seq in range(1, 7)] == [30, 60, 120, 240, 300, 300]


def test_a_lines_key_names_its_job_and_the_jobs_occurrence():
    key = rules.key_of("gen_abc-def", 3)
    assert key == "gen_abc-def-3" and rules.job_of_key(key) == "gen_abc-def"
    assert rules.key_of("gen_x", 1) != rules.key_of("gen_x", 2)


def test_a_model_batch_job_is_late_only_once_submitted_and_past_the_deadline():
    assert not rules.past_deadline(None, NOW, 60)
    assert not rules.past_deadline(NOW - dt.timedelta(seconds=60), NOW, 60)
    assert rules.past_deadline(NOW - dt.timedelta(seconds=61), NOW, 60)


def test_output_lines_that_are_not_json_objects_are_skipped_and_their_jobs_go_online():
    data = b'{"key": "a-0", "response": {}}\n\nnot json\n[1, 2]\n{"key": "b-0", "error": {"code": 500}}\n'
    assert [line["key"] for line in model_batches.lines(data)] == ["a-0", "b-0"]
