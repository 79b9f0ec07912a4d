"""The docs name only code that exists: a `module.name` (or `pkg/module.name`) in ARCHITECTURE.md,
the README or a decision note must be a function, class, constant or field of that module, or a
stored field path the code writes. A renamed or removed function fails here until the docs follow
(a decision note keeps its history by naming the old one after "was")."""

from __future__ import annotations

import re
from pathlib import Path

from lote_local.config import REPO_ROOT

SOURCES = [
    *(REPO_ROOT / "functions" / "lote").rglob("*.py"),
    *(REPO_ROOT / "infra" / "local" / "lote_local").rglob("*.py"),
    *(REPO_ROOT / "bench").rglob("*.py"),
    *(REPO_ROOT / "clients" / "python" / "src").rglob("*.py"),
]
DOCS = [
    REPO_ROOT / "ARCHITECTURE.md",
    REPO_ROOT / "README.md",
    *sorted((REPO_ROOT / "docs" / "decisions").glob("*.md")),
]
REFERENCE = re.compile(r"(?<!was )`((?:[a-z_]+/)*)([a-z_]+)\.([A-Za-z_]\w*)(?:\(\))?`")
SUFFIXES = {"py", "json", "md", "yaml", "yml", "txt", "tf", "toml", "jsonl", "csv", "png", "jpg", "html", "js",
            "css", "sh", "env", "hcl"}  # fmt: skip


def _defines(text: str, name: str) -> bool:
    """Whether a module's text defines `name` (def, class, assignment, field, enum member)."""
    return (
        re.search(
            rf"^\s*(?:async\s+def|def|class)\s+{name}\b|^\s*{name}\s*[:=,]|\bself\.{name}\s*=", text, re.M
        )
        is not None
    )


def _unresolved(doc: Path, by_stem: dict[str, list[Path]], texts: dict[Path, str]) -> list[str]:
    found = []
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for match in REFERENCE.finditer(line):
            folders, module, name = match.groups()
            if name in SUFFIXES:
                continue
            candidates = [p for p in by_stem.get(module, []) if str(p.parent).endswith(folders.rstrip("/"))]
            if not candidates:
                continue  # not one of our modules (a setting, a JSON key, another project's name)
            dotted = f"{module}.{name}"
            if any(_defines(texts[p], name) for p in candidates):
                continue
            if any(f'"{dotted}' in text for text in texts.values()):
                continue  # a stored field path (`progress.counting_at`)
            found.append(f"{doc.relative_to(REPO_ROOT)}:{number} {match.group(0)}")
    return found


def test_every_code_name_in_the_docs_exists():
    texts = {path: path.read_text() for path in SOURCES}
    by_stem: dict[str, list[Path]] = {}
    for path in SOURCES:
        by_stem.setdefault(path.stem, []).append(path)
    stale = [entry for doc in DOCS for entry in _unresolved(doc, by_stem, texts)]
    assert not stale, f"the docs name code that is gone: {stale}"
