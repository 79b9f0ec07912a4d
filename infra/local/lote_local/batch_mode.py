"""Gemini's batch mode and Files API as the offline model serves them (Developer API, v1beta).

The shapes are those documented at ai.google.dev/api/batch-api and ai.google.dev/api/files and
recorded by other projects against the real service (tests/fixtures/gemini/batch/, with provenance):

- Files: a resumable upload (`POST /upload/v1beta/files`, `X-Goog-Upload-Command: start` → an
  `X-Goog-Upload-URL`; then `upload, finalize` with the bytes → `{"file": {...}}` and
  `X-Goog-Upload-Status: final`), `GET /v1beta/files/{id}`, `DELETE`, and
  `GET /download/v1beta/files/{id}:download?alt=media` for files the service made (a batch's output;
  uploads cannot be downloaded, as the real API refuses).
- Batches: `POST /v1beta/models/{model}:batchGenerateContent` with `{"batch": {"displayName",
  "inputConfig": {"fileName"} | {"requests": {"requests": [...]}}}}` answers the batch as an
  operation (`name`, `metadata` = the GenerateContentBatch, `done`, `response` once it succeeded);
  `GET /v1beta/batches/{id}`, `GET /v1beta/batches`, `POST /v1beta/batches/{id}:cancel`, `DELETE`.
- States move with time: PENDING, RUNNING after a third of the turnaround, then SUCCEEDED with a
  JSONL output file (one `{"key", "response" | "error"}` line per request: a line's failure does
  not fail the batch), or FAILED / EXPIRED as knobs ask; a cancel before the end is CANCELLED.

Knobs: the server's turnaround (`--batch-turnaround-s`, `POST /batch_mode {"turnaround_s": N}`);
in a request's prompt, `[[batch=missing]]` leaves its line out of the output, `[[batch_end=failed]]`
or `[[batch_end=expired]]` ends its whole batch so, and the usual `[[fault=…]]` knobs make its
line an error (429, 500, 503, invalid) or a refusal (safety, no_image).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

API = "type.googleapis.com/google.ai.generativelanguage.v1beta"
FILE_TTL_S = 48 * 3600  # the Files API keeps a file 48 hours


def _stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StoredFile:
    """A file of the Files API: uploaded (not downloadable) or generated (a batch's output)."""

    name: str
    data: bytes
    mime_type: str
    display_name: str
    source: str  # UPLOADED | GENERATED
    created: float = field(default_factory=time.time)

    def resource(self, base: str) -> dict[str, Any]:
        """The File resource."""
        body = {
            "name": self.name, "displayName": self.display_name, "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)), "createTime": _stamp(self.created),
            "updateTime": _stamp(self.created), "expirationTime": _stamp(self.created + FILE_TTL_S),
            "sha256Hash": hashlib.sha256(self.data).hexdigest(), "uri": f"{base}/v1beta/{self.name}",
            "state": "ACTIVE", "source": self.source,
        }  # fmt: skip
        if self.source == "GENERATED":
            body["downloadUri"] = f"{base}/download/v1beta/{self.name}:download?alt=media"
        return body


@dataclass
class Batch:
    """One batch job: its requests, and its end once reached (decided when first seen past it)."""

    name: str
    model: str
    display_name: str
    lines: list[dict[str, Any]]  # {"key", "request"} (a file's) or {"request", "metadata"} (inline)
    inline: bool
    created: float
    turnaround_s: float
    state: str = "BATCH_STATE_PENDING"
    ended: float | None = None
    output: str | None = None  # the responses file's name, or the inline responses below
    responses: list[dict[str, Any]] | None = None
    succeeded: int = 0
    failed: int = 0


# A line's answer: {"response": GenerateContentResponse} or {"error": Status}; None leaves it out.
LineAnswer = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]
ENDS = {"failed": "BATCH_STATE_FAILED", "expired": "BATCH_STATE_EXPIRED"}


class BatchMode:
    """The files and batch jobs of one offline model server."""

    def __init__(self, answer: LineAnswer, turnaround_s: float) -> None:
        self.answer = answer
        self.turnaround_s = turnaround_s
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, Batch] = {}
        self.lock = threading.Lock()

    # --- Files ---------------------------------------------------------------------------------

    def start_upload(self, headers: Any, body: bytes) -> str:
        """A resumable upload's start: its id (the upload URL's `upload_id`)."""
        meta = (json.loads(body or b"{}") or {}).get("file") or {}
        upload_id = secrets.token_hex(8)
        with self.lock:
            self.uploads[upload_id] = {
                "data": b"",
                "mime": headers.get("X-Goog-Upload-Header-Content-Type") or meta.get("mimeType") or "",
                "display": meta.get("displayName") or "",
                "name": meta.get("name") or "",
            }
        return upload_id

    def upload_chunk(self, upload_id: str, offset: int, data: bytes, finalize: bool) -> StoredFile | None:
        """A chunk at `offset`; the file once finalized (None before). KeyError: no such upload."""
        with self.lock:
            upload = self.uploads[upload_id]
            if offset != len(upload["data"]):
                raise ValueError(f"offset {offset} is not the upload's size {len(upload['data'])}")
            upload["data"] += data
            if not finalize:
                return None
            del self.uploads[upload_id]
            name = upload["name"] or f"files/{secrets.token_hex(6)}"
            stored = StoredFile(name, upload["data"], upload["mime"] or "application/octet-stream",
                                upload["display"], "UPLOADED")  # fmt: skip
            self.files[name] = stored
            return stored

    def file(self, name: str) -> StoredFile | None:
        """A file by name (`files/{id}`)."""
        with self.lock:
            return self.files.get(name)

    def delete_file(self, name: str) -> bool:
        """Delete a file; whether it existed."""
        with self.lock:
            return self.files.pop(name, None) is not None

    def file_bytes(self, uri: str) -> tuple[bytes, str] | None:
        """The bytes of a file a request refers to (`fileData.fileUri`: its URI or name)."""
        name = "files/" + uri.rstrip("/").rsplit("/", 1)[-1]
        found = self.file(name)
        return (found.data, found.mime_type) if found else None

    # --- Batches -------------------------------------------------------------------------------

    def create(self, model: str, batch: dict[str, Any]) -> Batch:
        """A new batch job (ValueError for an input that is not there or not JSONL)."""
        config = batch.get("inputConfig") or {}
        if "fileName" in config:
            source = self.file(str(config["fileName"]))
            if source is None:
                raise LookupError(f"File {config['fileName']} not found.")
            lines = [json.loads(line) for line in source.data.decode().splitlines() if line.strip()]
            inline = False
        else:
            lines = list((config.get("requests") or {}).get("requests") or [])
            inline = True
        if not lines:
            raise ValueError("The batch has no requests.")
        name = f"batches/{secrets.token_hex(8)}"
        made = Batch(name, model, str(batch.get("displayName") or ""), lines, inline, time.time(),
                     self.turnaround_s)  # fmt: skip
        with self.lock:
            self.batches[name] = made
        return made

    def get(self, name: str) -> Batch | None:
        """A batch, moved on to where its clock says it is."""
        with self.lock:
            batch = self.batches.get(name)
        if batch is not None:
            self._advance(batch)
        return batch

    def all(self) -> list[Batch]:
        """Every batch, newest first."""
        with self.lock:
            batches = sorted(self.batches.values(), key=lambda b: b.created, reverse=True)
        for batch in batches:
            self._advance(batch)
        return batches

    def cancel(self, name: str) -> bool:
        """Cancel a batch that has not ended; whether there was such a batch."""
        batch = self.get(name)
        if batch is None:
            return False
        with self.lock:
            if batch.ended is None:
                batch.state, batch.ended = "BATCH_STATE_CANCELLED", time.time()
        return True

    def delete(self, name: str) -> bool:
        """Forget a batch (its output file stays)."""
        with self.lock:
            return self.batches.pop(name, None) is not None

    def _advance(self, batch: Batch) -> None:
        now = time.time()
        with self.lock:
            if batch.ended is not None:
                return
            if now < batch.created + batch.turnaround_s:
                running = now >= batch.created + batch.turnaround_s / 3
                batch.state = "BATCH_STATE_RUNNING" if running else "BATCH_STATE_PENDING"
                return
            batch.ended = now  # decided once, by the first look past the turnaround
        end = self._end_asked(batch)
        if end:
            with self.lock:
                batch.state = ENDS[end]
            return
        answers = []
        for line in batch.lines:
            answered = self.answer(batch.model, line["request"])
            if answered is None:
                continue
            if batch.inline:
                answered = {**answered, "metadata": line.get("metadata") or {}}
            else:
                answered = {**answered, "key": line.get("key")}
            answers.append(answered)
        with self.lock:
            batch.succeeded = sum(1 for a in answers if "response" in a)
            batch.failed = len(batch.lines) - batch.succeeded
            if batch.inline:
                batch.responses = answers
            else:
                name = f"files/batch-{batch.name.split('/')[-1]}"
                out = StoredFile(name, _jsonl(answers), "application/jsonl", f"{batch.display_name} output",
                                 "GENERATED")  # fmt: skip
                self.files[out.name] = out
                batch.output = out.name
            batch.state = "BATCH_STATE_SUCCEEDED"

    @staticmethod
    def _end_asked(batch: Batch) -> str:
        for line in batch.lines:
            text = json.dumps(line.get("request") or {})
            for end in ENDS:
                if f"batch_end={end}" in text:
                    return end
        return ""

    def resource(self, batch: Batch) -> dict[str, Any]:
        """The batch as the API answers it: an operation whose metadata is the GenerateContentBatch."""
        with self.lock:
            pending = 0 if batch.ended is not None else len(batch.lines)
            meta: dict[str, Any] = {
                "@type": f"{API}.GenerateContentBatch", "model": f"models/{batch.model}", "name": batch.name,
                "displayName": batch.display_name, "createTime": _stamp(batch.created),
                "updateTime": _stamp(batch.ended or batch.created), "state": batch.state,
                "batchStats": {"requestCount": str(len(batch.lines)), "pendingRequestCount": str(pending)},
            }  # fmt: skip
            body: dict[str, Any] = {"name": batch.name, "metadata": meta}
            if batch.ended is None:
                return body
            meta["endTime"] = _stamp(batch.ended)
            body["done"] = True
            if batch.state == "BATCH_STATE_SUCCEEDED":
                meta["batchStats"]["successfulRequestCount"] = str(batch.succeeded)
                if batch.failed:
                    meta["batchStats"]["failedRequestCount"] = str(batch.failed)
                if batch.output is not None:
                    output: dict[str, Any] = {"responsesFile": batch.output}
                else:
                    output = {"inlinedResponses": {"inlinedResponses": batch.responses or []}}
                meta["output"] = output
                body["response"] = {"@type": f"{API}.GenerateContentBatchOutput", **output}
            elif batch.state == "BATCH_STATE_CANCELLED":
                body["error"] = {"code": 1, "message": "CANCELLED"}
            else:
                body["error"] = {"code": 13 if batch.state == ENDS["failed"] else 4,
                                 "message": f"The batch ended {batch.state}."}  # fmt: skip
            return body


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
