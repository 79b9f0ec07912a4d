"""`lote-admin` with no environment at all says what to set, in one line, instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lote.admin.cli import NO_ENVIRONMENT, find_env_file


def test_no_environment_is_one_line_naming_what_to_set(tmp_path: Path):
    assert find_env_file(tmp_path) is None
    home = tmp_path / "home"  # no gcloud application default credentials in it
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOTE_", "GOOGLE_", "GEMINI_", "CLOUDSDK_", "GCE_"))
        and not k.endswith("_EMULATOR_HOST")
    }
    # NO_GCE_CHECK: on a Compute Engine runner the metadata server would otherwise supply credentials.
    env.update({"HOME": str(home), "NO_GCE_CHECK": "True"})
    admin = Path(sys.executable).parent / "lote-admin"
    done = subprocess.run([admin, "create-tenant", "--name", "Acme", "--credits", "1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == NO_ENVIRONMENT + "\n"
    assert "Traceback" not in done.stderr
    assert "make dev" in done.stderr and "FIRESTORE_EMULATOR_HOST" in done.stderr
