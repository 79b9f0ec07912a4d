"""queue.yaml → Cloud Tasks settings: units, the retry-limit mapping, and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lote_local import queue_yaml
from lote_local.config import REPO_ROOT
from lote_local.queue_yaml import QueueYamlError, spec_from_entry


@pytest.mark.parametrize(
    ("rate", "per_s"), [("5/s", 5), ("120/m", 2), ("3600/h", 1), ("86400/d", 1), ("0.5/s", 0.5)]
)
def test_rate_units(rate: str, per_s: float):
    assert queue_yaml.parse_rate(rate, "q") == per_s


@pytest.mark.parametrize(("age", "seconds"), [("30m", 1800), ("2d", 172800), ("45s", 45), ("1.5h", 5400)])
def test_age_units(age: str, seconds: float):
    assert queue_yaml.parse_age(age, "q") == seconds


def test_task_retry_limit_counts_retries_so_attempts_are_one_more():
    spec = spec_from_entry({"name": "q", "rate": "1/s", "retry_parameters": {"task_retry_limit": 0}})
    assert spec.max_attempts == 1
    spec = spec_from_entry({"name": "q", "rate": "1/s", "retry_parameters": {"task_retry_limit": 7}})
    assert spec.max_attempts == 8


def test_defaults_follow_app_engine():
    spec = spec_from_entry({"name": "q", "rate": "1/s"})
    assert (spec.bucket_size, spec.max_attempts, spec.max_retry_duration_s) == (5, -1, 0.0)
    assert (spec.min_backoff_s, spec.max_backoff_s, spec.max_doublings) == (0.1, 3600.0, 16)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "q", "rate": "501/s"}, "rate"),
        ({"name": "q", "rate": "fast"}, "rate"),
        ({"name": "q"}, "rate is required"),
        ({"name": "bad_name", "rate": "1/s"}, "queue name"),
        ({"name": "q", "rate": "1/s", "mode": "pull"}, "push"),
        ({"name": "q", "rate": "1/s", "max_concurrent_requests": 5001}, "max_concurrent_requests"),
        ({"name": "q", "rate": "1/s", "retry_parameters": {"task_retry_limit": -1}}, "task_retry_limit"),
        ({"name": "q", "rate": "1/s", "retry_parameters": {"min_backoff_seconds": 9,
                                                           "max_backoff_seconds": 1}}, "min_backoff"),
        ({"name": "q", "rate": "1/s", "retry_parameters": {"task_age_limit": "soon"}}, "task_age_limit"),
    ],
)  # fmt: skip
def test_invalid_entries_name_queue_and_field(entry: dict, message: str):
    with pytest.raises(QueueYamlError, match=message):
        spec_from_entry(entry)


def test_repeated_names_are_refused(tmp_path: Path):
    path = tmp_path / "queue.yaml"
    path.write_text("queue:\n- name: a\n  rate: 1/s\n- name: a\n  rate: 2/s\n")
    with pytest.raises(QueueYamlError, match="repeat"):
        queue_yaml.load(path)


def test_the_repo_queue_yaml_is_valid_and_has_the_queues_the_app_uses():
    names = {spec.name for spec in queue_yaml.load(REPO_ROOT / "queue.yaml")}
    assert {"generation", "fanout", "webhooks"} <= names
