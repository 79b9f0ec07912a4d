"""`make fuzz`: the schemathesis run of the test suite as a longer campaign, summarised in RESULTS.md.

The same tests as `make test` (tests/integration/test_fuzz.py), with more examples per operation
and longer stateful runs; the section records requests sent, answers by status, and failures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from bench import machine

RESULTS = Path(__file__).with_name("RESULTS.md")
TITLE = "## Fuzz (schemathesis)"
EXAMPLES = int(os.environ.get("LOTE_FUZZ_EXAMPLES", "150"))
STEPS = int(os.environ.get("LOTE_FUZZ_STATEFUL_STEPS", "40"))
SEED = int(os.environ.get("LOTE_FUZZ_SEED") or secrets.randbelow(2**32))  # a new campaign each time


def campaign() -> tuple[str, int]:
    """Run the campaign; the RESULTS.md section and pytest's exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        summary, report = Path(tmp) / "summary.json", Path(tmp) / "junit.xml"
        env = {**os.environ, "LOTE_FUZZ_EXAMPLES": str(EXAMPLES), "LOTE_FUZZ_STATEFUL_STEPS": str(STEPS),
               "LOTE_FUZZ_SUMMARY": str(summary), "LOTE_FUZZ_SEED": str(SEED)}  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration/test_fuzz.py",
             f"--junitxml={report}"],
            env=env, check=False,
        )  # fmt: skip
        seconds = time.monotonic() - started
        seen: dict[str, Any] = (
            json.loads(summary.read_text()) if summary.exists() else {"requests": 0, "statuses": {}}
        )
        suite = ET.parse(report).getroot().find("testsuite")  # noqa: S314
        tests = int(suite.get("tests", 0)) if suite is not None else 0
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0)) if suite is not None else 0
    statuses = ", ".join(f"{code}: {count}" for code, count in sorted(seen["statuses"].items()))
    section = (
        f"{TITLE}\n\n"
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `make fuzz` on: {machine.describe()}.\n\n"
        "schemathesis 4 (pytest integration) against the local stack: every operation of "
        "`/v1/openapi.json`, positive and negative data, all checks (not a server error, status code, "
        "content type, response schema and headers conformance, negative data rejected, positive data "
        "accepted, ignored auth, use after free, resource availability, unsupported methods), the "
        "stateful links, then the invariant audit of the fuzzed tenant.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| examples per operation | {EXAMPLES} (stateful: {STEPS} steps), seed {SEED} |\n"
        f"| requests sent | {seen['requests']} |\n"
        f"| answers by status | {statuses} |\n"
        f"| tests (operations + workflows + audit) | {tests} |\n"
        f"| failures | {failed} |\n"
        f"| wall time | {seconds:.0f} s |\n"
    )
    return section, done.returncode


def merge(section: str) -> None:
    """Replace this section of RESULTS.md (or append it), leaving the others as they are."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    head, sep, rest = text.partition(TITLE)
    tail = rest.split("\n## ", 1)[1] if sep and "\n## " in rest else ""
    RESULTS.write_text(head.rstrip() + "\n\n" + section + ("\n## " + tail if tail else ""))


def main() -> None:
    """`make fuzz`."""
    section, code = campaign()
    merge(section)
    print(section)
    sys.exit(code)


if __name__ == "__main__":
    main()
