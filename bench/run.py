"""Run every benchmark and rewrite bench/RESULTS.md (machine and date noted)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from bench import batch_bench, generation_bench, machine, stack_bench, webhook_bench

RESULTS = Path(__file__).with_name("RESULTS.md")
SUITES = {
    "stack": stack_bench.run,
    "generation": generation_bench.run,
    "batch": batch_bench.run,
    "webhooks": webhook_bench.run,
}


def main() -> None:
    """`make bench` (all) or `python -m bench.run stack`."""
    chosen = sys.argv[1:] or list(SUITES)
    sections = []
    for name in chosen:
        print(f"bench: {name} ...", flush=True)
        sections.append(SUITES[name]())
    header = (
        "# Benchmark results\n\n"
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `make bench` on: {machine.describe()}.\n"
        "Medians unless noted; ratios are measured within one run.\n\n"
    )
    if sys.argv[1:]:  # a subset: keep the other suites' sections from the last full run, in place
        fresh = dict(zip(_titles(sections), sections, strict=True))
        merged = []
        for old in _sections(RESULTS.read_text()):
            title = next((t for t in fresh if old.startswith(t)), None)
            merged.append(fresh.pop(title) if title else old)
        sections = merged + list(fresh.values())
    RESULTS.write_text(header + "\n".join(sections))
    print(RESULTS.read_text())


def _sections(text: str) -> list[str]:
    parts = text.split("\n## ")
    return ["## " + part.rstrip() + "\n" for part in parts[1:]]


def _titles(sections: list[str]) -> list[str]:
    return [section.split("\n", 1)[0] for section in sections]


if __name__ == "__main__":
    main()
