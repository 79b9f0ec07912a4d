"""`make lint`'s packaging check: build the wheel, install it in a clean venv, import every module;
then the same for the Python client (clients/python), which must install on its own.

A package missing from the wheel, or a data file it reads (pricing.json, presets.json), fails here
rather than on a partner's machine. The venv is new each time and imports come from the wheel, not
from this checkout (the check asserts where `lote` was found).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".lote" / "wheel-check"

IMPORT_ALL = """
import importlib, pkgutil, sys
from pathlib import Path
import lote, lote_local
count = 0
for package in (lote, lote_local):
    here = Path(package.__file__).resolve()
    assert Path(sys.prefix).resolve() in here.parents, f"{package.__name__} imported from {here}"
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
        count += 1
from lote.billing import pricing
from lote.quality import presets
assert pricing.table()["models"] and presets.catalogue(), "package data missing"
print(f"wheel ok: {count} modules imported from {Path(lote.__file__).parent.parent}")
"""


def run(*command: str | Path) -> None:
    """Run a command, failing the check with its output if it fails."""
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT)


CLIENT_IMPORTS = """
import importlib, importlib.util, pkgutil, sys
from pathlib import Path
import lote_client
here = Path(lote_client.__file__).resolve()
assert Path(sys.prefix).resolve() in here.parents, f"lote_client imported from {here}"
assert importlib.util.find_spec("lote") is None, "the client pulled in the server package"
count = sum(1 for info in pkgutil.walk_packages(lote_client.__path__, "lote_client.")
            if importlib.import_module(info.name))
print(f"client ok: {count} modules imported from {here.parent}")
"""


def check_client() -> None:
    """`pip install ./clients/python[cli]` in a new venv: it imports, needs no `lote`, runs `lote`."""
    work = WORK / "client"
    venv.create(work, with_pip=True)
    python = work / "bin" / "python"
    run(
        python,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "install",
        "--quiet",
        f"{ROOT / 'clients' / 'python'}[cli]",
    )
    run(python, "-c", CLIENT_IMPORTS)
    run(work / "bin" / "lote", "--help")


def main() -> None:
    """Build, install clean, import everything, check the console scripts."""
    shutil.rmtree(WORK, ignore_errors=True)
    # setuptools reuses build/ in the checkout: a module deleted since would still ship.
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    dist = WORK / "dist"
    pip = ("-m", "pip", "--disable-pip-version-check")
    run(sys.executable, *pip, "wheel", "--quiet", "--no-deps", "-w", dist, ".")
    [wheel] = dist.glob("lote-*.whl")
    venv.create(WORK / "venv", with_pip=True)
    python = WORK / "venv" / "bin" / "python"
    run(python, *pip, "install", "--quiet", f"{wheel}[local]")
    run(python, "-c", IMPORT_ALL)
    for script in ("lote-admin", "lote-stack", "lote-tasks-emulator", "lote-model-server"):
        if not (WORK / "venv" / "bin" / script).exists():
            sys.exit(f"wheel check: console script {script} was not installed")
    check_client()


if __name__ == "__main__":
    main()
