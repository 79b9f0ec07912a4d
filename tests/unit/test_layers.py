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
        # Billing owns a tenant's balance (its ledger, its purse): tenants use billing, never back.
        ("billing", ("lote.jobs", "lote.batches", "lote.api", "lote.web", "lote.tenants")),
        # Quality is rules (plan, prompts, presets, schemas); jobs/pipeline.py runs them.
        ("quality", ("lote.jobs", "lote.batches", "lote.dispatch", "lote.billing", "lote.api", "lote.web")),
        ("tenants", ("lote.batches", "lote.api", "lote.web", "lote.webhooks", "lote.audit", "lote.repair")),
        ("audit", ("lote.api", "lote.web", "lote.repair")),
        ("admin", ("lote.api", "lote.web")),
        ("batches", ("lote.api", "lote.web", "lote.repair", "lote.audit")),
        ("webhooks", ("lote.repair", "lote.audit", "lote.billing")),
        ("dispatch", ("lote.api", "lote.web", "lote.repair", "lote.audit", "lote.billing")),
        # Usage is rollups of finished jobs: jobs write them, routes read them; it knows neither.
        ("usage", ("lote.jobs", "lote.batches", "lote.billing", "lote.api", "lote.web")),
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


def _package_of(module: str) -> str | None:
    """The domain package a `lote.…` import belongs to (None for a top-level module)."""
    parts = module.split(".")
    if parts[0] != "lote" or len(parts) < 2 or not (PACKAGE / parts[1]).is_dir():
        return None
    return parts[1]


def test_no_two_domain_packages_import_each_other():
    # Deferred imports used to hold cycles together (billing ↔ tenants, jobs ↔ quality): a cycle
    # is found here whether its imports are at the top or inside a function.
    edges: dict[str, set[str]] = {}
    for path in modules(""):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue
        found = {_package_of(name) for name in imports(path)} - {None, parts[0]}
        edges.setdefault(parts[0], set()).update(p for p in found if p is not None)
    cycles = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert not cycles, f"packages importing each other: {cycles}"


def test_the_web_layer_does_not_import_the_routes():
    # The routes use the web layer (current_services, render_error); the apps that join them live
    # in lote/api/apps.py, so lote.web ↔ lote.api is no cycle held together by deferred imports.
    bad = {n for n in imports(PACKAGE / "web.py") if n == "lote.api" or n.startswith("lote.api.")}
    assert not bad, f"web.py imports {sorted(bad)}"
