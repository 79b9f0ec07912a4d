"""The offline model's text answers: JSON that conforms to the request's response schema, derived
deterministically from the input images, with knobs for every branch of the quality pipeline.

A request with `responseMimeType: application/json` and a `responseSchema` (Gemini's schema:
OBJECT, STRING with or without enum, BOOLEAN, INTEGER, NUMBER, ARRAY) or a `responseJsonSchema`
(JSON Schema) gets an object filled field by field: enums answer their first value (what a
`[[seen=VALUE]]` knob names instead, `_` for a space: `seen=dining_room`), booleans are true,
numbers are a high score, arrays of objects with an enum `name` get one entry per name. What the
fields mean is lote's reading, so the knobs name lote's steps, found by the schema's title
(`Analysis` → analyze, `Verdict` → verify):

- `[[verify=fail]]` — the verdict fails (every `passed` false, `score` low); with `times=N` only
  the first N verify calls carrying the same markers fail.
- `[[analyze=unsuitable]]` — not an interior; `[[analyze=furnished]]` — the room is not empty.
- `[[verify=malformed]]`, `[[analyze=malformed]]` — a body that is not JSON (`times=N` as above).
- `[[verify=timeout]]`, `[[analyze=timeout]]` — hold the request (`hang=S`), then 503.

Knobs come from the prompt's markers and from a PNG text chunk `lote-knobs` in an input image (a
preset's prompt is fixed; a test's photo can still carry them).
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

STEPS = {"Analysis": "analyze", "Verdict": "verify"}
KNOB_CHUNK = "lote-knobs"
PASS_SCORE, FAIL_SCORE = 0.92, 0.35
_FALSE_WHEN = {"unsuitable": {"is_interior"}, "furnished": {"is_empty"}}


def step_of(schema: dict[str, Any]) -> str:
    """The lote step a schema belongs to (its title), or `text` for any other schema."""
    return STEPS.get(str(schema.get("title", "")), "text")


def image_knobs(images: list[bytes]) -> str:
    """Markers carried by the input images' `lote-knobs` PNG text chunks, as prompt text."""
    from PIL import Image

    found = []
    for data in images:
        try:
            with Image.open(io.BytesIO(data)) as image:
                text = image.info.get(KNOB_CHUNK)
        except OSError:
            continue
        if text:
            found.append(f"[[{text}]]")
    return " ".join(found)


def answer(schema: dict[str, Any], images: list[bytes], verdict: str, seen: str = "") -> Any:
    """An instance of `schema` for these images; `verdict` is "", "fail", "unsuitable" or "furnished";
    `seen` is the value an enum answers when it is one of its options."""
    digest = hashlib.sha256(b"".join(images)).hexdigest()
    return _fill(schema, "", digest, verdict, seen.replace("_", " "))


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "object")
    if isinstance(kind, list):  # JSON Schema's ["string", "null"]
        kind = next((k for k in kind if k != "null"), "string")
    return str(kind).lower()


def _fill(schema: dict[str, Any], name: str, digest: str, verdict: str, seen: str = "") -> Any:
    """A value for field `name` of this schema (a JSON Schema `anyOf` takes its first branch)."""
    if "anyOf" in schema:
        branches = [s for s in schema["anyOf"] if _kind(s) != "null"]
        return _fill(branches[0] if branches else {"type": "null"}, name, digest, verdict, seen)
    kind = _kind(schema)
    if "enum" in schema:
        options = list(schema["enum"])
        return seen if seen in options else (options[0] if options else "")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: _fill(sub, key, hashlib.sha256((digest + key).encode()).hexdigest(), verdict, seen)
                for key, sub in properties.items()}  # fmt: skip
    if kind == "array":
        return _array(schema.get("items") or {"type": "string"}, name, digest, verdict)
    if kind == "boolean":
        if name == "passed":
            return verdict != "fail"
        return name not in _FALSE_WHEN.get(verdict, set())
    if kind in ("number", "integer"):
        score = FAIL_SCORE if verdict == "fail" else PASS_SCORE
        value = score if name == "score" else 1 + int(digest[:4], 16) % 3
        return round(value) if kind == "integer" and name != "score" else value
    if kind == "null":
        return None
    if name in ("finding", "findings", "reason"):  # what is wrong: nothing, when the check passed
        return f"the {name} of a failed check: a window moved ({digest[:6]})" if verdict == "fail" else ""
    return f"{name or 'text'} {digest[:6]}"


def _array(items: dict[str, Any], name: str, digest: str, verdict: str) -> list[Any]:
    """One entry per enum name for arrays of checks; else two entries."""
    named = (items.get("properties") or {}).get("name") or {}
    if _kind(items) == "object" and "enum" in named:
        entries = []
        for option in named["enum"]:
            entry = _fill(items, "", hashlib.sha256((digest + str(option)).encode()).hexdigest(), verdict)
            entries.append({**entry, "name": option})
        return entries
    return [
        _fill(items, name, hashlib.sha256((digest + str(i)).encode()).hexdigest(), verdict) for i in range(2)
    ]
