"""ARCHITECTURE.md's code layout names every module of the package, and no module that is gone."""

from __future__ import annotations

import re

from lote_local.config import REPO_ROOT

PACKAGE = REPO_ROOT / "functions" / "lote"


def _layout() -> str:
    text = (REPO_ROOT / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Code layout") :]
    return section[section.index("```\nfunctions/") : section.index("infra/local/")]


def _sections(layout: str) -> dict[str, str]:
    """The text of each package's entry (`    jobs/ …` up to the next top-level entry)."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^    (\w+)/(.*?)(?=^    \S|\Z)", layout, re.M | re.S):
        found[match.group(1)] = match.group(2)
    return found


def test_every_module_is_in_the_layout_under_its_package():
    layout, sections = _layout(), _sections(_layout())
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        package = path.parent.relative_to(PACKAGE).parts
        where = sections.get(package[0], "") if package else layout
        if not re.search(rf"\b{re.escape(path.stem)}\.py\b", where):
            missing.append(str(path.relative_to(PACKAGE)))
    assert not missing, f"ARCHITECTURE.md's layout does not name {missing}"


def test_the_layout_names_no_module_that_does_not_exist():
    existing = {path.name for path in (REPO_ROOT / "functions").rglob("*.py")}
    named = set(re.findall(r"\b(\w+\.py)\b", _layout()))
    assert named <= existing, f"ARCHITECTURE.md names {sorted(named - existing)}, which do not exist"
