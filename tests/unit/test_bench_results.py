"""bench/run.py's RESULTS.md writer: fresh sections replace their old ones, others stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run

OLD = "# Benchmark results\n\nRun long ago on: old box.\n\n## Stack\nold stack\n\n## Chaos\nchaos figures\n"


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "RESULTS.md"
    path.write_text(OLD)
    monkeypatch.setattr(run, "RESULTS", path)
    return path


def test_a_full_run_keeps_the_sections_of_suites_it_did_not_run(results: Path):
    run.write(["## Stack\nnew stack\n", "## Batch\nbatch\n"], subset=False)
    text = results.read_text()
    assert "old box" not in text and "Run " in text  # the header is renewed
    assert "new stack" in text and "old stack" not in text
    assert "## Chaos\nchaos figures" in text and "## Batch\nbatch" in text


def test_a_subset_keeps_the_header(results: Path):
    run.write(["## Chaos\nnew chaos\n"], subset=True)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nRun long ago on: old box.")
    assert "new chaos" in text and "old stack" in text


def test_a_section_run_on_its_own_says_when_and_where():
    section = run.stamped("## Stack\n\nnew stack\n", "stack")
    title, blank, stamp, *rest = section.split("\n")
    assert (title, blank) == ("## Stack", "")
    assert stamp.startswith("Run ") and "`python -m bench.run stack` on: " in stamp and "cores" in stamp
    assert "\n".join(rest) == "\nnew stack\n"
