"""An offline model server that speaks Gemini's REST `generateContent` and returns real images.

Faults and latency are chosen by knobs: defaults from the command line, or per request by markers
in the prompt, e.g. `[[fault=503]]`, `[[fault=429 times=2]]`, `[[latency=1500]]`. See KNOBS.
A quota (`--quota-rps`, changed while running with `POST /quota {"rps": N}`) answers calls above
it with 429 RESOURCE_EXHAUSTED and a RetryInfo, as Gemini does (see quota.py).

Answers Gemini really sent (tests/fixtures/gemini/, recorded.py) are replayed per request with
`[[fault=recorded:NAME]]`, or for every call, image and text, while `POST /trouble {"recorded": NAME}`
holds (a deployment's key gone bad, its day's quota spent); `POST /trouble {}` lifts it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lote_local import imaging, recorded, text_model
from lote_local.batch_mode import BatchMode
from lote_local.gemini_wire import read_contents, response, text_response
from lote_local.quota import Quota

log = logging.getLogger("lote.model")

KNOBS = {
    "latency": "milliseconds to wait before answering",
    "fault": "429 | 500 | 503 | timeout | safety | no_image | malformed | invalid | recorded:NAME "
    "(an answer of tests/fixtures/gemini/, as Gemini sent it)",
    "times": "apply the fault only to the first N identical requests, then succeed",
    "delay": "seconds in the RetryInfo of a 429 (default 7)",
    "hang": "seconds a `timeout` fault holds the request (default from --hang-s)",
    "analyze / verify": "a JSON request's step (text_model.py): fail | unsuitable | furnished | "
    "malformed | timeout | 503 | 429",
    "seen": "what a JSON answer's enums say (e.g. the analysis's room type), `_` for a space",
    "grain": "percent of noise in the image, so it compresses like a photo (3: ~1.5 MB at 1024 px)",
    "thoughts": "1: the answer starts with a thought and a draft image marked `thought` (thinking output)",
    "gate": 'NAME: hold the call (after its latency) until `POST /gates {"open": NAME}`, so a test holds '
    "work at the model for as long as it needs instead of guessing a latency (at most --hang-s)",
}
_MARKER = re.compile(r"\[\[([^\]]*)\]\]")
_PATH = re.compile(
    r"^/(v1|v1beta|v1alpha)/(?:projects/[^/]+/locations/[^/]+/publishers/google/)?models/([^/:]+):generateContent$"
)
_V = r"(?:v1|v1beta|v1alpha)"
_BATCH_CREATE = re.compile(rf"^/{_V}/models/([^/:]+):batchGenerateContent$")
_BATCH = re.compile(rf"^/{_V}/(batches/[^/:]+)(:cancel)?$")
_BATCHES = re.compile(rf"^/{_V}/batches$")
_FILE = re.compile(rf"^/(?:download/)?{_V}/(files/[^/:]+)(:download)?$")
_UPLOAD = re.compile(rf"^/upload/{_V}/files$")

_ERRORS = {
    "429": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "500": (
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in the console.",
    ),
    "503": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "invalid": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
}


@dataclass(frozen=True)
class Defaults:
    """Server-wide knob values, overridden per request by prompt markers."""

    latency_ms: int = 0
    fault: str = ""
    hang_s: float = 300.0
    long_edge: int = 512
    retry_delay_s: int = 7
    batch_turnaround_s: float = 1.0


def parse_knobs(prompt: str) -> dict[str, str]:
    """`[[fault=503 times=2]] [[latency=100]]` → {"fault": "503", "times": "2", "latency": "100"}."""
    knobs: dict[str, str] = {}
    for group in _MARKER.findall(prompt):
        for pair in group.split():
            key, _, value = pair.partition("=")
            knobs[key.strip()] = value.strip()
    return knobs


class ModelServer(ThreadingHTTPServer):
    """The HTTP server with its knobs and request counters."""

    daemon_threads = True

    def gate(self, name: str) -> threading.Event:
        """The gate NAME (made closed on first mention, whether by a call or by POST /gates)."""
        with self.lock:
            return self.gates.setdefault(name, threading.Event())

    def __init__(self, address: tuple[str, int], defaults: Defaults, quota_rps: float = 0.0) -> None:
        super().__init__(address, _Handler)
        self.defaults = defaults
        self.quota = Quota(quota_rps)
        self.outage_until = 0.0  # time.time() until which every call answers 503 (POST /outage)
        self.trouble: str | None = None  # a recorded answer every call gets (POST /trouble)
        self.lock = threading.Lock()
        self.gates: dict[str, threading.Event] = {}  # [[gate=NAME]] calls wait until POST /gates opens NAME
        self.seen: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.batch_mode = BatchMode(self.batch_line, defaults.batch_turnaround_s)

    def batch_line(self, model: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """One batch request's line: its response, or its error, as the knobs in its prompt ask (the
        online quota, latency and gates do not apply: batch mode has its own capacity)."""
        try:
            prompt, images = read_contents(request, self.batch_mode.file_bytes)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            code, status, _ = _ERRORS["invalid"]
            return {"error": {"code": code, "message": f"Invalid request: {exc}", "status": status}}
        knobs = parse_knobs(prompt + " " + text_model.image_knobs(images))
        if knobs.get("batch") == "missing":
            return None
        fault = knobs.get("fault", self.defaults.fault)
        with self.lock:
            self.stats["batch_lines"] += 1
            if knobs.get("run"):
                self.stats[f"batch_lines:run={knobs['run']}"] += 1
            self.stats[f"batch_fault:{fault or 'none'}"] += 1
        if fault in _ERRORS:
            code, status, text = _ERRORS[fault]
            return {"error": {"code": code, "message": text, "status": status}}
        if fault in ("safety", "no_image"):
            reason = "IMAGE_SAFETY" if fault == "safety" else "NO_IMAGE"
            return {"response": response(model, [], reason, prompt, images)}
        return {"response": image_response(self.defaults, model, request, prompt, images)}


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, key: str, message: str | None = None, delay: int = 7) -> None:
        code, status, text = _ERRORS[key]
        error: dict[str, Any] = {"code": code, "message": message or text, "status": status}
        if key == "429":
            details = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}
            error["details"] = [details]
        self._json(code, {"error": error})

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._json(200, {"status": "ok", "service": "offline-model", "knobs": KNOBS})
        elif self.path == "/stats":
            with self.server.lock:
                self._json(200, dict(self.server.stats))
        elif self.path == "/quota":
            self._json(200, {"rps": self.server.quota.rps})
        elif self.path == "/trouble":
            self._json(200, {"recorded": self.server.trouble})
        elif self.path == "/gates":
            with self.server.lock:
                self._json(200, {name: gate.is_set() for name, gate in self.server.gates.items()})
        elif self.path == "/outage":
            self._json(200, {"remaining_s": round(max(0.0, self.server.outage_until - time.time()), 3)})
        elif self.path == "/batch_mode":
            self._json(200, {"turnaround_s": self.server.batch_mode.turnaround_s})
        elif self._batch_get(urlsplit(self.path).path):
            return
        else:
            self._json(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})

    def do_POST(self) -> None:
        match = _PATH.match(self.path.split("?", 1)[0])
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/quota":
            self._set_quota(raw)
            return
        if self.path == "/outage":
            self._set_outage(raw)
            return
        if self.path == "/trouble":
            self._set_trouble(raw)
            return
        if self.path == "/gates":
            self._open_gate(raw)
            return
        if self.path == "/batch_mode":
            self._set_batch_mode(raw)
            return
        if (
            not match
            and not self.path.startswith("/upload/")
            and not (self.headers.get("x-goog-api-key") or self.headers.get("Authorization"))
        ):
            self._json(
                401, {"error": {"code": 401, "message": "API key missing", "status": "UNAUTHENTICATED"}}
            )
            return
        parts = urlsplit(self.path)
        if not match and self._batch_post(parts.path, parse_qs(parts.query), raw):
            return
        if not match:
            self._not_found(f"Not found: POST {parts.path}")
            return
        if not (self.headers.get("x-goog-api-key") or self.headers.get("Authorization")):
            self._json(
                401,
                {"error": {"code": 401, "message": "API key missing", "status": "UNAUTHENTICATED"}},
            )
            return
        try:
            request = json.loads(raw)
            prompt, images = read_contents(request)
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            self._error("invalid", f"Invalid request: {exc}")
            return
        self._generate(match.group(2), request, prompt, images, raw)

    def _set_quota(self, raw: bytes) -> None:
        try:
            self.server.quota.set(float(json.loads(raw)["rps"]))
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"error": {"code": 400, "message": f'body must be {{"rps": N}}: {exc}'}})
            return
        log.info("quota set to %s requests/s", self.server.quota.rps)
        self._json(200, {"rps": self.server.quota.rps})

    def _set_trouble(self, raw: bytes) -> None:
        try:
            name = json.loads(raw or b"{}").get("recorded")
            if name is not None:
                recorded.load(str(name))
        except (ValueError, AttributeError, KeyError) as exc:
            message = f'body must be {{"recorded": NAME}} naming one of {recorded.names()} (or {{}}): {exc}'
            self._json(400, {"error": {"code": 400, "message": message}})
            return
        self.server.trouble = name
        log.info("trouble: every call answers %s", name or "normally again")
        self._json(200, {"recorded": name})

    def _open_gate(self, raw: bytes) -> None:
        try:
            name = str(json.loads(raw)["open"])
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"error": {"code": 400, "message": f'body must be {{"open": NAME}}: {exc}'}})
            return
        self.server.gate(name).set()
        log.info("gate %s opened", name)
        self._json(200, {name: True})

    def _replay(
        self, name: str, model: str, request: dict[str, Any], prompt: str, images: list[bytes]
    ) -> None:
        """Send a recorded answer as Gemini sent it (an image answer with a fresh image of its type)."""
        try:
            answer = recorded.load(name)
        except KeyError:
            self._error("invalid", f"no recorded answer {name!r}: one of {recorded.names()}")
            return
        body, mime = answer["body"], recorded.image_mime(answer["body"])
        if mime is not None:
            fresh = self._image_response(model, request, prompt, images, mime)
            data = base64.b64decode(fresh["candidates"][0]["content"]["parts"][0]["inlineData"]["data"])
            body = recorded.with_image(
                body, data, fresh["candidates"][0]["content"]["parts"][0]["inlineData"]["mimeType"]
            )
        self._json(int(answer["http_status"]), body)

    def _set_outage(self, raw: bytes) -> None:
        try:
            seconds = float(json.loads(raw)["seconds"])
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"error": {"code": 400, "message": f'body must be {{"seconds": N}}: {exc}'}})
            return
        self.server.outage_until = time.time() + max(0.0, seconds)
        log.info("outage: every call answers 503 for %.1f s", seconds)
        self._json(200, {"remaining_s": seconds})

    def _generate(
        self, model: str, request: dict[str, Any], prompt: str, images: list[bytes], raw: bytes
    ) -> None:
        config = request.get("generationConfig") or {}
        schema = config.get("responseSchema") or config.get("responseJsonSchema")
        if config.get("responseMimeType") == "application/json" and isinstance(schema, dict):
            self._text(model, schema, prompt, images)
            return
        if self.server.trouble:
            self._replay(self.server.trouble, model, request, prompt, images)
            return
        defaults = self.server.defaults
        knobs = parse_knobs(prompt)
        fault = knobs.get("fault", defaults.fault)
        wait = self.server.quota.take()
        # `run=ID` in a marker (or a photo's lote-knobs) counts this test's calls apart from the rest.
        run = parse_knobs(prompt + " " + text_model.image_knobs(images)).get("run")
        with self.server.lock:
            self.server.stats["requests"] += 1
            if run:
                self.server.stats[f"requests:run={run}"] += 1
            if wait is not None:
                self.server.stats["quota_exhausted"] += 1
        if wait is not None:  # refused at once, before any work, as a quota is
            self._error("429", delay=max(1, math.ceil(wait)))
            return
        with self.server.lock:
            key = hashlib.sha256(raw).hexdigest()
            self.server.seen[key] += 1
            seen = self.server.seen[key]
        if fault and "times" in knobs and seen > int(knobs["times"]):
            fault = ""
        self._waiting(run, +1)
        try:
            time.sleep(int(knobs.get("latency", defaults.latency_ms)) / 1000)
            if "gate" in knobs:
                self.server.gate(knobs["gate"]).wait(float(knobs.get("hang", defaults.hang_s)))
        finally:
            self._waiting(run, -1)
        if time.time() < self.server.outage_until:
            fault = "503"  # the model is down for everyone
        with self.server.lock:
            self.server.stats[f"fault:{fault or 'none'}"] += 1
        if fault in _ERRORS:
            self._error(fault, delay=int(knobs.get("delay", defaults.retry_delay_s)))
        elif fault == "timeout":
            time.sleep(float(knobs.get("hang", defaults.hang_s)))
            self._error("503")
        elif fault == "malformed":
            self._send(200, b'{"candidates": [{"content": {"parts": [{"inlineData": ')
        elif fault.startswith("recorded:"):
            self._replay(fault.removeprefix("recorded:"), model, request, prompt, images)
        elif fault in ("safety", "no_image"):
            reason = "IMAGE_SAFETY" if fault == "safety" else "NO_IMAGE"
            self._json(200, response(model, [], reason, prompt, images))
        elif fault:
            self._error("invalid", f"unknown fault knob {fault!r}")
        else:
            self._json(200, self._image_response(model, request, prompt, images))

    def _text(self, model: str, schema: dict[str, Any], prompt: str, images: list[bytes]) -> None:
        """A JSON answer (text_model.py): only the step's own knobs apply, not the image faults,
        latency or quota (the text model's quota is its own)."""
        if self.server.trouble:
            self._replay(self.server.trouble, model, {}, prompt, images)
            return
        step = text_model.step_of(schema)
        markers = " ".join(_MARKER.findall(prompt + " " + text_model.image_knobs(images)))
        knobs = parse_knobs(f"[[{markers}]]")
        action = knobs.get(step, "")
        with self.server.lock:
            self.server.stats[f"text:{step}"] += 1
            if knobs.get("run"):
                self.server.stats[f"text:{step}:run={knobs['run']}"] += 1
            self.server.seen[f"{step}|{markers}"] += 1
            seen = self.server.seen[f"{step}|{markers}"]
        if action and "times" in knobs and seen > int(knobs["times"]):
            action = ""
        if time.time() < self.server.outage_until:
            action = "503"
        with self.server.lock:
            self.server.stats[f"text:{step}:{action or 'ok'}"] += 1
        if action == "timeout":
            time.sleep(float(knobs.get("hang", self.server.defaults.hang_s)))
            self._error("503")
        elif action in _ERRORS:
            self._error(action, delay=int(knobs.get("delay", self.server.defaults.retry_delay_s)))
        elif action == "malformed":
            self._send(200, json.dumps(text_response(model, '{"passed": tru', prompt, images)).encode())
        else:
            verdict = action if action in ("fail", "unsuitable", "furnished") else ""
            body = json.dumps(text_model.answer(schema, images, verdict, knobs.get("seen", "")))
            self._json(200, text_response(model, body, prompt, images))

    def _waiting(self, run: str | None, change: int) -> None:
        """Count a run's image calls in flight, and the most there ever were (`in_flight_max:run=…`)."""
        if run:
            with self.server.lock:
                stats = self.server.stats
                stats[f"in_flight:run={run}"] += change
                stats[f"in_flight_max:run={run}"] = max(stats[f"in_flight_max:run={run}"],
                                                        stats[f"in_flight:run={run}"])  # fmt: skip

    def _image_response(
        self, model: str, request: dict[str, Any], prompt: str, images: list[bytes], mime: str | None = None
    ) -> dict[str, Any]:
        return image_response(self.server.defaults, model, request, prompt, images, mime)

    # --- Batch mode and the Files API (batch_mode.py) ------------------------------------------

    def _base(self) -> str:
        return f"http://{self.headers.get('Host') or '127.0.0.1'}"

    def _batch_get(self, path: str) -> bool:
        """GET of a file, a file's bytes, a batch or the batches; False when the path is none."""
        batches = self.server.batch_mode
        if _BATCHES.match(path):
            operations = [batches.resource(b) for b in batches.all()]
            self._json(200, {"operations": operations} if operations else {})
            return True
        if (match := _BATCH.match(path)) and not match.group(2):
            found = batches.get(match.group(1))
            if found is None:
                self._not_found(f"Batch {match.group(1)} not found.")
            else:
                self._json(200, batches.resource(found))
            return True
        if match := _FILE.match(path):
            stored = batches.file(match.group(1))
            if stored is None:
                self._not_found(f"File {match.group(1)} not found.")
            elif match.group(2):
                if stored.source != "GENERATED":
                    self._error("invalid", "Only generated files can be downloaded.")
                else:
                    self._send(200, stored.data, stored.mime_type)
            else:
                self._json(200, stored.resource(self._base()))
            return True
        return False

    def _batch_post(self, path: str, query: dict[str, list[str]], raw: bytes) -> bool:
        """A file upload (start or chunk), a batch's creation or cancel; False when the path is none."""
        batches = self.server.batch_mode
        if _UPLOAD.match(path):
            self._upload(query, raw)
            return True
        if match := _BATCH_CREATE.match(path):
            try:
                made = batches.create(match.group(1), json.loads(raw)["batch"])
            except LookupError as exc:
                self._not_found(str(exc))
                return True
            except (ValueError, KeyError, TypeError) as exc:
                self._error("invalid", f"Invalid batch: {exc}")
                return True
            with self.server.lock:
                self.server.stats["batches_created"] += 1
            self._json(200, batches.resource(made))
            return True
        if (match := _BATCH.match(path)) and match.group(2):
            if batches.cancel(match.group(1)):
                self._json(200, {})
            else:
                self._not_found(f"Batch {match.group(1)} not found.")
            return True
        return False

    def _upload(self, query: dict[str, list[str]], raw: bytes) -> None:
        batches = self.server.batch_mode
        command = (self.headers.get("X-Goog-Upload-Command") or "").lower()
        if "start" in command:
            upload_id = batches.start_upload(self.headers, raw)
            self.send_response(200)
            url = f"{self._base()}{urlsplit(self.path).path}?upload_id={upload_id}&upload_protocol=resumable"
            self.send_header("X-Goog-Upload-URL", url)
            self.send_header("X-Goog-Upload-Status", "active")
            self.send_header("X-Goog-Upload-Chunk-Granularity", "8388608")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            offset = int(self.headers.get("X-Goog-Upload-Offset") or 0)
            stored = batches.upload_chunk(query["upload_id"][0], offset, raw, "finalize" in command)
        except (KeyError, IndexError, ValueError) as exc:
            self._error("invalid", f"Invalid upload: {exc}")
            return
        body = json.dumps({"file": stored.resource(self._base())} if stored else {}).encode()
        self.send_response(200)
        self.send_header("X-Goog-Upload-Status", "final" if stored else "active")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        batches = self.server.batch_mode
        if match := _FILE.match(path):
            gone = batches.delete_file(match.group(1))
        elif match := _BATCH.match(path):
            gone = batches.delete(match.group(1))
        else:
            gone = False
        if gone:
            self._json(200, {})
        else:
            self._not_found("Not found")

    def _not_found(self, message: str) -> None:
        self._json(404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}})

    def _set_batch_mode(self, raw: bytes) -> None:
        try:
            self.server.batch_mode.turnaround_s = float(json.loads(raw)["turnaround_s"])
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, {"error": {"code": 400, "message": f'body must be {{"turnaround_s": N}}: {exc}'}})
            return
        self._json(200, {"turnaround_s": self.server.batch_mode.turnaround_s})


def image_response(
    defaults: Defaults,
    model: str,
    request: dict[str, Any],
    prompt: str,
    images: list[bytes],
    mime: str | None = None,
) -> dict[str, Any]:
    """An answer with a real image drawn from the prompt and the inputs (as the request's config asks)."""
    config = request.get("generationConfig") or {}
    image_config = config.get("imageConfig") or {}
    mime = mime or image_config.get("outputMimeType") or "image/png"
    if mime not in imaging.FORMATS:
        mime = "image/png"
    clean = _MARKER.sub("", prompt).strip()
    grain = parse_knobs(prompt).get("grain", "0")
    edge, ratio = defaults.long_edge, image_config.get("aspectRatio")
    data, _, _ = imaging.render(clean, images, ratio, mime, edge, int(grain) if grain.isdigit() else 0)
    parts: list[dict[str, Any]] = [
        {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}
    ]
    if model.startswith("gemini-3"):  # its final parts carry a signature of its thinking (recorded)
        parts[0]["thoughtSignature"] = base64.b64encode(hashlib.sha256(data).digest()).decode()
    if parse_knobs(prompt).get("thoughts") == "1":
        # With thinking output: a thought and a draft image come first, marked `thought`.
        draft, _, _ = imaging.render(f"draft of {clean}", images, ratio, mime, edge, 0)
        sketch = {"inlineData": {"mimeType": mime, "data": base64.b64encode(draft).decode()}, "thought": True}
        parts[:0] = [{"text": "Sketching the layout first.", "thought": True}, sketch]
    return response(model, parts, "STOP", prompt, images)


def main(argv: list[str] | None = None) -> None:
    """Command line: lote-model-server --port 8125 [--latency-ms 0] [--fault 503]."""
    parser = argparse.ArgumentParser(description="offline Gemini generateContent server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fault", default="", help=KNOBS["fault"])
    parser.add_argument("--hang-s", type=float, default=300.0, help="how long `timeout` hangs")
    parser.add_argument("--long-edge", type=int, default=512, help="pixels of the long edge")
    parser.add_argument("--quota-rps", type=float, default=0.0, help="requests/s admitted (0: no quota)")
    parser.add_argument("--batch-turnaround-s", type=float, default=1.0, help="a batch job's time to its end")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    defaults = Defaults(args.latency_ms, args.fault, args.hang_s, args.long_edge,
                        batch_turnaround_s=args.batch_turnaround_s)  # fmt: skip
    server = ModelServer((args.host, args.port), defaults, args.quota_rps)
    log.info("offline model on http://%s:%d (%s)", args.host, args.port, defaults)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
