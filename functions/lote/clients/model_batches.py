"""Gemini's batch mode through google-genai (Developer API): files up, a batch job, its state, its
output down, and each output line read as one attempt's answer. The same client as online calls
(clients/model.ModelClient); every failure is classified as online (clients/model.classify)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lote.clients.model import (
    ModelClient,
    ModelImage,
    ModelTransient,
    classify,
    read_image,
    transport_errors,
    usage_of,
)

# The SDK's names for a batch job's states (it maps the API's BATCH_STATE_* to these).
PENDING, RUNNING = "JOB_STATE_PENDING", "JOB_STATE_RUNNING"
SUCCEEDED, FAILED = "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"
CANCELLED, EXPIRED = "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"
ENDED = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED, "JOB_STATE_PARTIALLY_SUCCEEDED"})


@dataclass(frozen=True)
class BatchState:
    """A batch job as last read: its state, its output file once it succeeded, why it ended so."""

    name: str
    state: str
    output_file: str | None = None
    error: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the batch job will not change any more."""
        return self.state in ENDED


def _api(call: Any) -> Any:
    """Run a batch-mode call; its failures classified as an online call's."""
    from google.genai import errors

    try:
        return call()
    except errors.APIError as exc:
        status = exc.code or 0
        raise classify(status, f"{status} {exc.status}: {exc.message}", exc.details) from None
    except transport_errors() as exc:
        raise ModelTransient("model_unreachable", f"{type(exc).__name__}: {exc}") from None


def upload(client: ModelClient, data: bytes, mime_type: str, display_name: str) -> tuple[str, str]:
    """A file through the Files API (kept 48 h by the service): its name and URI."""
    from google.genai import types

    config = types.UploadFileConfig(mime_type=mime_type, display_name=display_name[:128])
    made = _api(lambda: client.client.files.upload(file=io.BytesIO(data), config=config))
    return str(made.name), str(made.uri)


def create(client: ModelClient, model: str, file_name: str, display_name: str) -> str:
    """A batch job over the requests of the JSONL file `file_name`: its name (`batches/…`)."""
    from google.genai import types

    config = types.CreateBatchJobConfig(display_name=display_name)
    made = _api(lambda: client.client.batches.create(model=model, src=file_name, config=config))
    return str(made.name)


def find(client: ModelClient, display_name: str) -> str | None:
    """The batch job created under `display_name`, if any (a submission that crashed after creating
    it finds it here instead of paying for a second one)."""
    for job in _api(lambda: list(client.client.batches.list(config={"page_size": 100}))):
        if job.display_name == display_name:
            return str(job.name)
    return None


def get(client: ModelClient, name: str) -> BatchState:
    """The batch job's state now."""
    job = _api(lambda: client.client.batches.get(name=name))
    state = str(getattr(job.state, "value", job.state) or "")
    output = job.dest.file_name if job.dest is not None else None
    if state == SUCCEEDED and output is None:
        output = _output_of_operation(client, name)
    error = getattr(job, "error", None)
    return BatchState(name, state, output, str(error) if error else None)


def _output_of_operation(client: ModelClient, name: str) -> str | None:
    """The responses file as the operation's top-level `response` names it. google-genai 3.4.0 reads
    only `metadata.output`; a recorded answer (tests/fixtures/gemini/batch/) carries it only in
    `response`, and without it every line of a succeeded batch would be sent back as missing."""
    answered = _api(lambda: client.client._api_client.request("get", name, {}))
    body = json.loads(answered.body or "{}")
    found = (body.get("response") or {}).get("responsesFile") or (
        ((body.get("metadata") or {}).get("output") or {}).get("responsesFile")
    )
    return str(found) if found else None


def cancel(client: ModelClient, name: str) -> None:
    """Ask the service to cancel the batch job (it may still end otherwise)."""
    _api(lambda: client.client.batches.cancel(name=name))


def download(client: ModelClient, file_name: str) -> bytes:
    """A file the service made (a batch job's output)."""
    data: bytes = _api(lambda: client.client.files.download(file=file_name))
    return data


def lines(data: bytes) -> Iterator[dict[str, Any]]:
    """The output's lines as JSON objects (a line that is not JSON is skipped: its job is then
    missing from the output, and goes back to online dispatch)."""
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            yield line


def read_line(line: dict[str, Any]) -> ModelImage:
    """One output line as the online call's answer would be: the image, or the ModelFailure its
    error or its response is (`error` is a google.rpc.Status; a response is read as online)."""
    from google.genai import types

    if line.get("error") is not None:
        error = line["error"] if isinstance(line["error"], dict) else {}
        status = int(error.get("code") or 0)
        # A Status code of a line may be gRPC's (3) or HTTP's (400): both are mapped as HTTP.
        http = _GRPC_TO_HTTP.get(status, status) if status < 100 else status
        text = f"{http} {error.get('status') or ''}: {error.get('message') or ''}"
        raise classify(http, text, error.get("details"))
    try:
        response = types.GenerateContentResponse.model_validate(line.get("response") or {})
    except ValueError as exc:
        raise ModelTransient("model_bad_response", f"unreadable batch line: {exc}") from None
    data, mime_type = read_image(response)
    return ModelImage(data=data, mime_type=mime_type, elapsed_ms=0, usage=usage_of(response))


# google.rpc.Code → HTTP status (googleapis/googleapis google/rpc/code.proto's mapping).
_GRPC_TO_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 13: 500, 14: 503, 16: 401}
