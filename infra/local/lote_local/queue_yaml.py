"""Parse queue.yaml (App Engine format) into Cloud Tasks queue settings, the way Terraform does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.cloud import tasks_v2
from google.protobuf import duration_pb2

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smhd])\s*$")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")

# Cloud Tasks limits (queue.proto) and App Engine defaults (queueinfo.py).
MAX_RATE = 500.0
MAX_CONCURRENT = 5000
DEFAULT_BUCKET = 5
DEFAULT_CONCURRENT = 1000
DEFAULT_MIN_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 3600.0
DEFAULT_MAX_DOUBLINGS = 16


class QueueYamlError(ValueError):
    """queue.yaml is malformed; the message names the queue and the field."""


@dataclass(frozen=True)
class QueueSpec:
    """One queue's settings in Cloud Tasks terms (rates per second, durations in seconds)."""

    name: str
    rate_per_s: float
    bucket_size: int
    max_concurrent: int
    max_attempts: int  # -1 = unlimited
    max_retry_duration_s: float  # 0 = unlimited
    min_backoff_s: float
    max_backoff_s: float
    max_doublings: int

    def to_queue(self, parent: str) -> tasks_v2.Queue:
        """The Queue message Terraform's google_cloud_tasks_queue would create."""
        return tasks_v2.Queue(
            name=f"{parent}/queues/{self.name}",
            rate_limits=tasks_v2.RateLimits(
                max_dispatches_per_second=self.rate_per_s,
                # Output-only in Cloud Tasks; the emulator accepts it as the stand-in for bucket_size.
                max_burst_size=self.bucket_size,
                max_concurrent_dispatches=self.max_concurrent,
            ),
            retry_config=tasks_v2.RetryConfig(
                max_attempts=self.max_attempts,
                max_retry_duration=_duration(self.max_retry_duration_s),
                min_backoff=_duration(self.min_backoff_s),
                max_backoff=_duration(self.max_backoff_s),
                max_doublings=self.max_doublings,
            ),
        )


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = int(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def parse_rate(text: str, queue: str) -> float:
    """`N/s|m|h|d` as tasks per second."""
    match = _RATE.match(str(text))
    if not match:
        raise QueueYamlError(f"queue {queue!r}: rate {text!r} is not N/s, N/m, N/h or N/d")
    rate = float(match.group(1)) / _UNIT_SECONDS[match.group(2)]
    if not 0 < rate <= MAX_RATE:
        raise QueueYamlError(f"queue {queue!r}: rate must be > 0 and at most {MAX_RATE}/s")
    return rate


def parse_age(text: str, queue: str) -> float:
    """`task_age_limit` such as `30m` or `2d`, in seconds."""
    match = _AGE.match(str(text))
    if not match:
        raise QueueYamlError(f"queue {queue!r}: task_age_limit {text!r} is not N{{s,m,h,d}}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _number(raw: dict[str, Any], key: str, queue: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise QueueYamlError(f"queue {queue!r}: {key} must be a non-negative number")
    return float(value)


def spec_from_entry(entry: dict[str, Any]) -> QueueSpec:
    """One `queue:` entry as a QueueSpec, validated against Cloud Tasks' limits."""
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,100}", name):
        raise QueueYamlError(f"queue name {name!r} must be 1-100 letters, digits or hyphens")
    if entry.get("mode", "push") != "push":
        raise QueueYamlError(f"queue {name!r}: only push queues exist in Cloud Tasks")
    if "rate" not in entry:
        raise QueueYamlError(f"queue {name!r}: rate is required")
    retry = entry.get("retry_parameters") or {}
    limit = retry.get("task_retry_limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise QueueYamlError(f"queue {name!r}: task_retry_limit must be a whole number >= 0")
    min_backoff = _number(retry, "min_backoff_seconds", name, DEFAULT_MIN_BACKOFF)
    max_backoff = _number(retry, "max_backoff_seconds", name, DEFAULT_MAX_BACKOFF)
    if min_backoff > max_backoff:
        raise QueueYamlError(f"queue {name!r}: min_backoff_seconds exceeds max_backoff_seconds")
    concurrent = int(_number(entry, "max_concurrent_requests", name, DEFAULT_CONCURRENT))
    if not 1 <= concurrent <= MAX_CONCURRENT:
        raise QueueYamlError(f"queue {name!r}: max_concurrent_requests must be 1-{MAX_CONCURRENT}")
    bucket = int(_number(entry, "bucket_size", name, DEFAULT_BUCKET))
    if not 1 <= bucket <= 500:
        raise QueueYamlError(f"queue {name!r}: bucket_size must be 1-500")
    age = retry.get("task_age_limit")
    return QueueSpec(
        name=name,
        rate_per_s=parse_rate(entry["rate"], name),
        bucket_size=bucket,
        max_concurrent=concurrent,
        # App Engine: task_retry_limit is the number of RETRIES, so attempts are one more.
        max_attempts=-1 if limit is None else limit + 1,
        max_retry_duration_s=0.0 if age is None else parse_age(age, name),
        min_backoff_s=min_backoff,
        max_backoff_s=max_backoff,
        max_doublings=int(_number(retry, "max_doublings", name, DEFAULT_MAX_DOUBLINGS)),
    )


def load(path: str | Path) -> list[QueueSpec]:
    """Every queue in a queue.yaml file."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    entries = document.get("queue")
    if not isinstance(entries, list):
        raise QueueYamlError(f"{path}: top-level `queue:` list is missing")
    specs = [spec_from_entry(entry) for entry in entries]
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise QueueYamlError(f"{path}: queue names repeat: {sorted(names)}")
    return specs
