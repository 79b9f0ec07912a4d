"""Answers Gemini really sent, replayed by the offline model (`[[fault=recorded:NAME]]`, or for every
call with `POST /trouble {"recorded": NAME}`).

The corpus lives in tests/fixtures/gemini/: one file per answer, `{"provenance", "http_status",
"body", "expected_class"}`, each from a public recording (see the files' provenance). An answer that
carries an image is replayed with a freshly rendered image in place of its (trimmed) data, so lote
can store it; everything else is sent as recorded.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "gemini"


@lru_cache(maxsize=64)
def load(name: str, corpus: Path = CORPUS) -> dict[str, Any]:
    """One recorded answer by its file name (without `.json`); KeyError when there is none."""
    path = corpus / f"{name}.json"
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or not path.is_file():
        raise KeyError(name)
    found: dict[str, Any] = json.loads(path.read_text())
    return found


def names(corpus: Path = CORPUS) -> list[str]:
    """Every recorded answer's name."""
    return sorted(p.stem for p in corpus.glob("*.json"))


def with_image(body: Any, image: bytes, mime_type: str) -> Any:
    """The body with each non-thought image part's data replaced by `image` (thought drafts keep
    theirs: lote must never take them)."""
    if not isinstance(body, dict):
        return body
    fresh = json.loads(json.dumps(body))
    for candidate in fresh.get("candidates") or []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            inline = part.get("inlineData") or part.get("inline_data")
            if inline is not None and not part.get("thought"):
                inline["data"] = base64.b64encode(image).decode()
                inline["mimeType"] = mime_type
    return fresh


def image_mime(body: Any) -> str | None:
    """The MIME type of the body's final image part, None when it has none."""
    found = None
    for candidate in (body.get("candidates") or []) if isinstance(body, dict) else []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            inline = part.get("inlineData") or part.get("inline_data")
            if inline is not None and not part.get("thought"):
                found = inline.get("mimeType") or inline.get("mime_type") or "image/png"
    return found
