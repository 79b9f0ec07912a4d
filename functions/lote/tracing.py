"""One trace per image (OpenTelemetry): accept → fan-out → release → attempt → model call(s) →
storage → finish → webhook, across the api, the worker and Cloud Tasks.

- Incoming requests are server spans (opentelemetry-instrumentation-flask, web.py), continuing the W3C
  `traceparent` they carry; a webhook's POST carries it on to the receiver (webhooks/delivery.py).
- Every Cloud Tasks task lote creates carries a `traceparent` header (tasks.create): the current
  span's, or the job's own for a job's task created elsewhere (a dispatcher tick releasing held jobs
  belongs to no image's trace: it names each job's).
- A job records the `traceparent` it was accepted under (`trace`), so its attempts, however late and
  wherever released, join the image's trace.
- The model calls, the output's storage and the settle are spans of their own (`span`).

The exporter is a setting: Cloud Trace deployed (`gcp`), a JSON-lines file per process locally and in
tests (`file`: the local stack writes `logs/{function}.spans.jsonl`), or none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lote.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

TRACEPARENT = "traceparent"
_configured = threading.Lock()
_done: list[bool] = []


def configure(settings: Settings) -> None:
    """The process's tracer provider and exporter, once (no exporter: the API's no-op tracer)."""
    with _configured:
        if _done or settings.trace_exporter == "none":
            return
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        sampler = ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))
        provider = TracerProvider(resource=Resource.create({"service.name": "lote"}), sampler=sampler)
        if settings.trace_exporter == "gcp":
            from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

            provider.add_span_processor(
                BatchSpanProcessor(CloudTraceSpanExporter(project_id=settings.project_id))
            )
        else:  # a file, written as each span ends (a test reads it while the stack runs)
            provider.add_span_processor(SimpleSpanProcessor(file_exporter(str(settings.trace_file))))
        trace.set_tracer_provider(provider)
        _done.append(True)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span of lote's own around a step (a model call, a store, a settle)."""
    from opentelemetry import trace

    with trace.get_tracer("lote").start_as_current_span(name) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"lote.{key}", value)
        yield


def current() -> str | None:
    """The current span's `traceparent` (None outside a sampled trace)."""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def headers(traceparent: str | None = None) -> dict[str, str]:
    """The headers that carry a trace on: `traceparent` given (a job's), else the current one's."""
    found = traceparent or current()
    return {TRACEPARENT: found} if found else {}


def file_exporter(path: str) -> SpanExporter:
    """An exporter of spans as JSON lines (trace, span, parent, name, start and end in ns,
    attributes), written as each span ends. Defined on first use: the SDK is imported only by a
    process that exports."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class FileExporter(SpanExporter):
        def __init__(self) -> None:
            self._file = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
            self._lock = threading.Lock()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with self._lock:
                for one in spans:
                    context, parent = one.get_span_context(), one.parent
                    if context is None:
                        continue
                    self._file.write(json.dumps({
                        "trace": f"{context.trace_id:032x}", "span": f"{context.span_id:016x}",
                        "parent": f"{parent.span_id:016x}" if parent is not None else None,
                        "name": one.name, "start": one.start_time, "end": one.end_time,
                        "attributes": dict(one.attributes or {}),
                    }, default=str) + "\n")  # fmt: skip
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            self._file.close()

    return FileExporter()


def read(path: str) -> list[Mapping[str, Any]]:
    """The spans a file exporter wrote (for tests and benches)."""
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]
