"""ARCHITECTURE.md's rules of who may import whom, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lote_local.config import REPO_ROOT

PACKAGE = REPO_ROOT / "functions" / "lote"


def imports(path: Path) -> set[str]:
    """Every module a file imports (at any depth, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("webhooks", ("lote.jobs", "lote.batches", "lote.api", "lote.web")),
        (
            "clients",
            ("lote.jobs", "lote.batches", "lote.tenants", "lote.billing", "lote.webhooks", "lote.api"),
        ),
        ("jobs", ("lote.batches", "lote.api", "lote.web")),
        ("billing", ("lote.jobs", "lote.batches", "lote.api", "lote.web")),
        ("tenants", ("lote.batches", "lote.api", "lote.web", "lote.webhooks", "lote.audit", "lote.repair")),
        ("audit", ("lote.api", "lote.web", "lote.repair")),
        ("admin", ("lote.api", "lote.web")),
        ("batches", ("lote.api", "lote.web", "lote.repair", "lote.audit")),
        ("webhooks", ("lote.repair", "lote.audit", "lote.billing")),
        ("dispatch", ("lote.api", "lote.web", "lote.repair", "lote.audit", "lote.billing")),
        ("", ("lote_local", "tests", "bench")),
    ],
)
def test_layers(folder: str, forbidden: tuple[str, ...]):
    for path in modules(folder):
        bad = {
            name for name in imports(path) if any(name == f or name.startswith(f + ".") for f in forbidden)
        }
        assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"


def test_only_the_web_layer_touches_flask():
    allowed = {PACKAGE / "web.py", *(PACKAGE / "api").glob("*.py")}
    for path in modules(""):
        if path not in allowed:
            assert not {n for n in imports(path) if n == "flask" or n.startswith("flask.")}, path


def _module_name(path: Path) -> str:
    return "lote." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")


def test_no_domain_module_reaches_flask_even_through_other_modules():
    # Direct imports are not enough: manifest.py once imported Flask through lote.api.http.
    graph = {_module_name(path): imports(path) for path in modules("")}
    web = {"lote.web", *(name for name in graph if name.startswith("lote.api"))}

    def reaches_flask(name: str, seen: set[str]) -> bool:
        if name in seen:
            return False
        seen.add(name)
        found = graph.get(name, set())
        if any(n == "flask" or n.startswith("flask.") for n in found):
            return True
        return any(reaches_flask(n, seen) for n in found if n in graph)

    offenders = sorted(name for name in graph if name not in web and reaches_flask(name, set()))
    assert offenders == []
