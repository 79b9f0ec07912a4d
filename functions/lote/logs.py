"""Logs the Cloud Logging way: one JSON object per line on stdout (google-cloud-logging's
StructuredLogHandler) with `severity`, `message`, the request's trace (`logging.googleapis.com/trace`,
`spanId`, `trace_sampled`, read from the `traceparent` or `X-Cloud-Trace-Context` header the front
end sets), and labels for what the line is about: `tenant_id`, `job_id`, `batch_id`, `task`,
`attempt` (bound for the duration of a request or an attempt by `bound`).

A line that a log-based metric counts names its `event` (`job.succeeded`, `job.failed`, …) and its
figures as JSON fields (`emit`): Terraform's metrics filter on `jsonPayload.event` and extract
numbers from `jsonPayload` (terraform/monitoring.tf), not on the wording of the message.

Locally (`LOTE_MODE=local`) the terminal stays readable (`LEVEL logger message`), and the same JSON
lines go to `LOTE_LOG_JSON_FILE` when set (the local stack writes `logs/{function}.jsonl`).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lote.settings import Settings

HUMAN = "%(levelname)s %(name)s %(message)s"
LABELS = ("tenant_id", "job_id", "batch_id", "task", "attempt")
_bound: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("lote_log_labels", default={})  # noqa: B039


class _Labels(logging.Filter):
    """Adds the bound labels to every record (a record's own `labels` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _bound.get()
        if bound:
            record.labels = {**bound, **getattr(record, "labels", {})}
        return True


def configure(settings: Settings) -> None:
    """The process's logging, once (a second call, or a host that configured it, changes nothing)."""
    root = logging.getLogger()
    if root.handlers:
        return
    root.setLevel(logging.INFO)
    handlers: list[logging.Handler] = []
    if settings.is_local:
        human = logging.StreamHandler()
        human.setFormatter(logging.Formatter(HUMAN))
        handlers.append(human)
        if settings.log_json_file:
            handlers.append(_structured(settings, open(settings.log_json_file, "a", buffering=1)))  # noqa: SIM115
    else:
        handlers.append(_structured(settings, None))
    for handler in handlers:
        # First: the structured handler's own filter reads `labels` when it runs.
        handler.filters.insert(0, _Labels())
        root.addHandler(handler)


def _structured(settings: Settings, stream: Any) -> logging.Handler:
    from google.cloud.logging.handlers import StructuredLogHandler

    return StructuredLogHandler(project_id=settings.project_id, stream=stream)


@contextmanager
def bound(**labels: object) -> Iterator[None]:
    """Label every line logged inside the block (values kept as strings; None ones left out)."""
    added = {k: str(v) for k, v in labels.items() if v is not None}
    token = _bound.set({**_bound.get(), **added})
    try:
        yield
    finally:
        _bound.reset(token)


def emit(logger: logging.Logger, level: int, event: str, message: str, *args: object, **fields: Any) -> None:
    """A line a metric may count: its `event` and `fields` as JSON fields, `message` % `args` for people."""
    logger.log(level, message, *args, extra={"json_fields": {"event": event, **fields}})
