"""What the sync and async clients share apart from I/O: request bodies, item files (CSV, JSONL),
file names for downloads and their checksums."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lote_client.errors import LoteError

INLINE_LIMIT = 10_000  # POST /v1/batches takes this many items inline; more go in a manifest
WAIT_MAX_S = 60  # the most a `Prefer: wait` may ask for
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
_BOOLEAN = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_INTEGER_FIELDS = {"max_regenerations"}
_BOOLEAN_FIELDS = {"verify", "require_quality_pass", "reuse"}
_TEXT_FIELDS = {"reference", "prompt", "preset", "model", "aspect_ratio", "output_format"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def body(**fields: Any) -> dict[str, Any]:
    """A request body without the fields left out (None)."""
    return {name: value for name, value in fields.items() if value is not None}


def content_type(path: Path) -> str:
    """The image type of a local file, from its suffix."""
    try:
        return IMAGE_TYPES[path.suffix.lower()]
    except KeyError:
        raise LoteError(0, "unsupported_file", f"{path}: send a PNG, JPEG or WebP file") from None


def is_local(image: str | Path) -> bool:
    """Whether an image is a local file (uploaded first) rather than a URL the API fetches."""
    return isinstance(image, Path) or not re.match(r"^(https?|gs|data):", str(image))


def upload_name(path: Path) -> str | None:
    """A local file's name as /v1/uploads accepts it (ASCII letters, digits, `._-`)."""
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in path.name)[:200]
    return name or None


def sha256_of(path: Path) -> str:
    """The file's SHA-256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_name(reference: str, mime_type: str) -> str:
    """A batch item's file: its reference, made safe for any file system (a reference that had to
    change gets a short hash of itself, so two references never share a file)."""
    return _stem(reference) + EXTENSIONS.get(mime_type, ".bin")


def _stem(reference: str) -> str:
    safe = _SAFE.sub("_", reference).strip("._") or "item"
    return safe if safe == reference else _hashed(safe, reference)


def _hashed(stem: str, reference: str) -> str:
    return f"{stem[:100]}-{hashlib.sha1(reference.encode()).hexdigest()[:8]}"  # noqa: S324 (a name, not a secret)


class FileNames:
    """The files of one batch download, given in item order (every item, with an output or not).

    macOS and Windows file systems ignore case, so `Kitchen` and `kitchen` would share a file: the
    later item's name gets a short hash of its reference. Every item reserves its name, whatever
    its status, so a rerun after a retry names each file as the first run did."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    def name(self, reference: str, mime_type: str | None) -> str:
        """The item's file name (its extension from `mime_type`, `.bin` when unknown)."""
        stem = _stem(reference)
        if self._owners.setdefault(stem.casefold(), reference) != reference:
            stem = _hashed(stem, reference)
            self._owners.setdefault(stem.casefold(), reference)
        return stem + EXTENSIONS.get(mime_type or "", ".bin")


def read_items(path: Path) -> list[dict[str, Any]]:
    """Batch items from a `.jsonl` file (one item a line) or a `.csv` file (a header row; columns are
    item fields, `params.NAME` and `metadata.NAME`; `images` holds URLs separated by spaces)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return [
            _json_line(line, number, path) for number, line in enumerate(text.splitlines(), 1) if line.strip()
        ]
    if path.suffix.lower() == ".csv":
        return [
            _csv_row(row, number, path) for number, row in enumerate(csv.DictReader(io.StringIO(text)), 2)
        ]
    raise LoteError(0, "unsupported_file", f"{path}: items come in a .csv or .jsonl file")


def _json_line(line: str, number: int, path: Path) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise LoteError(0, "invalid_items_file", f"{path}:{number}: not JSON ({exc})") from None
    if not isinstance(item, dict):
        raise LoteError(0, "invalid_items_file", f"{path}:{number}: an item is a JSON object")
    return item


def _csv_row(row: dict[str, str | None], number: int, path: Path) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for column, raw in row.items():
        if column is None:  # csv puts the cells beyond the header in a list under None
            raise LoteError(0, "invalid_items_file", f"{path}:{number}: more cells than columns")
        value = (raw if isinstance(raw, str) else "").strip()
        if not value:
            continue
        name = column.strip()
        if name.startswith(("params.", "metadata.")):
            group, _, key = name.partition(".")
            item.setdefault(group, {})[key] = value
        elif name == "images":
            item["images"] = value.split()
        elif name in _BOOLEAN_FIELDS:
            if value.lower() not in _BOOLEAN:
                raise LoteError(0, "invalid_items_file", f"{path}:{number}: {name} must be true or false")
            item[name] = _BOOLEAN[value.lower()]
        elif name in _INTEGER_FIELDS:
            if not value.isdigit():
                raise LoteError(0, "invalid_items_file", f"{path}:{number}: {name} must be a whole number")
            item[name] = int(value)
        elif name in _TEXT_FIELDS:
            item[name] = value
        else:
            raise LoteError(
                0,
                "invalid_items_file",
                f"{path}: unknown column {name!r} (use params.{name} or metadata.{name})",
            )
    return item


def manifest(items: Iterable[dict[str, Any]]) -> bytes:
    """Items as a JSONL manifest."""
    return "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items).encode()


def instant(value: Any) -> str | None:
    """A usage range's end as the API takes it: a datetime (RFC 3339, UTC), a date, or a string as is."""
    import datetime as dt

    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"a time, a date or a string, not {type(value).__name__}")


def usage_params(start: Any, end: Any, granularity: str, group_by: str | None, fmt: str) -> dict[str, str]:
    """GET /v1/account/usage's query (parameters left out are the server's defaults)."""
    found = {"from": instant(start), "to": instant(end), "granularity": granularity, "group_by": group_by,
             "format": None if fmt == "json" else fmt}  # fmt: skip
    return {name: value for name, value in found.items() if value is not None}


UNSET: Any = object()  # a spend control not passed: left as it is (None removes it)


def spend_controls_body(**fields: Any) -> dict[str, Any]:
    """PATCH /v1/account/spend-controls' body: the fields passed, None sent as null (removes one)."""
    return {name: value for name, value in fields.items() if value is not UNSET}
