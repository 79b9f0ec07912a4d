"""ARCHITECTURE.md describes the code by its convention, not module by module: every area (package)
of `functions/lote` is named there, the modules it names exist, and every module says what it holds
in its own docstring (the inventory a newcomer reads, kept where the code changes)."""

from __future__ import annotations

import ast
import re

from lote_local.config import REPO_ROOT

PACKAGE = REPO_ROOT / "functions" / "lote"
TEXT = (REPO_ROOT / "ARCHITECTURE.md").read_text()


def _layout() -> str:
    section = TEXT[TEXT.index("## Code layout") :]
    return section[section.index("```\nfunctions/") : section.index("## The local stack")]


def test_every_area_is_named_in_the_layout():
    layout = _layout()
    areas = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    missing = [area for area in areas if f"{area}/" not in layout]
    assert not missing, f"ARCHITECTURE.md's layout does not name the areas {missing}"


def test_the_docs_name_no_module_that_does_not_exist():
    existing = {path.name for path in REPO_ROOT.rglob("*.py") if ".venv" not in path.parts}
    named = set(re.findall(r"(?<![\w*])(\w+\.py)\b", TEXT))  # `api/*_routes.py` is a pattern
    assert named <= existing, f"ARCHITECTURE.md names {sorted(named - existing)}, which do not exist"


def test_every_module_says_what_it_holds():
    undocumented = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        if not docstring or len(docstring.split()) < 5:
            undocumented.append(str(path.relative_to(PACKAGE)))
    assert not undocumented, f"modules without a docstring saying what they hold: {undocumented}"
