"""The command line's live views (rich): a batch's progress bar with its counts by status, images
per minute and ETA; a download's bar. Quiet under --json."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from lote_client._download import FileResult, Report
from lote_client.client import Lote
from lote_client.models import Batch

err = Console(stderr=True, soft_wrap=True)  # commands in messages stay on one line, to copy


def counts_line(batch: Batch) -> str:
    """`12 ok · 1 failed · 4 running · 83 queued · 35/min · ETA 2m40s`."""
    c = batch.counts
    parts = [f"{c.succeeded} ok", f"{c.failed} failed", f"{c.running} running", f"{c.queued} queued"]
    if c.canceled:
        parts.append(f"{c.canceled} canceled")
    if batch.throughput_per_min:
        parts.append(f"{batch.throughput_per_min:.0f}/min")
    if batch.eta and not batch.done:
        left = dt.datetime.fromisoformat(batch.eta.replace("Z", "+00:00")) - dt.datetime.now(dt.UTC)
        parts.append(f"ETA {_duration(left.total_seconds())}")
    if batch.waiting_on_model:
        reason = batch.waiting_reason if batch.waiting_reason not in (None, "model_unavailable") else None
        parts.append(f"waiting on the model ({reason})" if reason else "waiting on the model")
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def wait(lote: Lote, batch_id: str, quiet: bool) -> Batch:
    """Follow the batch to its end, with a bar unless `quiet`."""
    if quiet:
        return lote.batches.wait(batch_id)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task: TaskID | None = None

        def show(batch: Batch) -> None:
            nonlocal task
            finished = batch.counts.succeeded + batch.counts.failed + batch.counts.canceled
            if task is None:
                task = progress.add_task(batch_id, total=batch.counts.total, counts="")
            progress.update(task, completed=finished, counts=counts_line(batch))

        return lote.batches.wait(batch_id, on_progress=show)


def download(lote: Lote, batch_id: str, out_dir: Path, concurrency: int, quiet: bool) -> Report:
    """Save the batch's images, with a bar unless `quiet`."""
    if quiet:
        return lote.batches.download(batch_id, out_dir, concurrency)
    total = lote.batches.get(batch_id).counts.succeeded
    with Progress(
        TextColumn("download"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=err,
    ) as progress:
        task = progress.add_task("download", total=total, note="")
        tally = {"downloaded": 0, "skipped": 0, "failed": 0}

        def step(result: FileResult) -> None:
            tally[result.status] += 1
            note = f"{tally['skipped']} already there · {tally['failed']} failed"
            progress.update(task, advance=1, note=note)

        return lote.batches.download(batch_id, out_dir, concurrency, on_file=step)


def report_dict(report: Report) -> dict[str, Any]:
    """A download report as JSON."""
    return {
        "downloaded": report.downloaded,
        "skipped": report.skipped,
        "failed": [{"reference": f.reference, "path": str(f.path), "error": f.error} for f in report.failed],
    }
