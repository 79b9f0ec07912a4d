"""Run every benchmark and rewrite bench/RESULTS.md (machine and date noted)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from bench import (
    admission_bench,
    batch_bench,
    capacity,
    chaos,
    chaos_report,
    dispatch_bench,
    economy_bench,
    generation_bench,
    large_batch_bench,
    machine,
    memory_bench,
    observability_bench,
    quality_bench,
    stack_bench,
    usage_bench,
    wait_bench,
    web_bench,
    webhook_bench,
)
from bench.sim import grid as sim_grid

RESULTS = Path(__file__).with_name("RESULTS.md")
SUITES = {
    "stack": stack_bench.run,
    "generation": generation_bench.run,
    "batch": batch_bench.run,
    "webhooks": webhook_bench.run,
    "quota": dispatch_bench.run_quota,
    "fairness": dispatch_bench.run_fairness,
    "outage": dispatch_bench.run_outage,
    "web": web_bench.run,
    "quality": quality_bench.run,
    "memory": memory_bench.run,
    "chaos": lambda: chaos_report.section(chaos.run(chaos.FULL)),
    "admission": admission_bench.run,
    "large-batch": large_batch_bench.run,
    "sim": sim_grid.run_all,
    "waits": wait_bench.run,
    "capacity": capacity.section,
    "economy": economy_bench.run,
    "observability": observability_bench.run,
    "usage": usage_bench.run,
}
# `make bench` runs these; the chaos run (minutes) has its own target, `make chaos`.
DEFAULT = [
    "stack",
    "generation",
    "batch",
    "webhooks",
    "quota",
    "fairness",
    "outage",
    "web",
    "quality",
    "memory",
    "admission",
    "large-batch",
    "waits",
    "sim",
    "capacity",
    "economy",
    "observability",
    "usage",
]


def main() -> None:
    """`make bench` (the default suites) or `python -m bench.run stack chaos`."""
    chosen = sys.argv[1:] or DEFAULT
    for number, name in enumerate(chosen):
        print(f"bench: {name} ...", flush=True)
        # Written as each suite ends, so a later suite's failure loses no measurement; a full run
        # renews the header with its first section.
        section = SUITES[name]()
        if sys.argv[1:]:
            section = stamped(section, name)
        write([section], subset=bool(sys.argv[1:]) or number > 0)
    print(RESULTS.read_text())


def stamped(section: str, suite: str) -> str:
    """The section with when, how and where it ran under its title: a subset's sections may come
    from other days and machines than the header's full run."""
    title, _, body = section.partition("\n")
    when = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    return f"{title}\n\nRun {when} with `python -m bench.run {suite}` on: {machine.describe()}.\n{body}"


def write(sections: list[str], subset: bool) -> None:
    """Put the fresh sections into RESULTS.md in place of their old ones; sections of suites that
    did not run (chaos, fuzz: their own targets) stay. A full run also renews the header (the date
    and machine); a subset keeps it."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    header = (
        "# Benchmark results\n\n"
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `make bench` on: {machine.describe()}.\n"
        "Medians unless noted; ratios are measured within one run.\n\n"
    )
    if subset and text:
        header = text.split("\n## ", 1)[0].rstrip() + "\n\n"
    fresh = dict(zip(_titles(sections), sections, strict=True))
    merged = []
    for old in _sections(text):
        title = next((t for t in fresh if old.startswith(t)), None)
        merged.append(fresh.pop(title) if title else old)
    RESULTS.write_text(header + "\n".join(merged + list(fresh.values())))


def _sections(text: str) -> list[str]:
    parts = text.split("\n## ")
    return ["## " + part.rstrip() + "\n" for part in parts[1:]]


def _titles(sections: list[str]) -> list[str]:
    return [section.split("\n", 1)[0] for section in sections]


if __name__ == "__main__":
    main()
