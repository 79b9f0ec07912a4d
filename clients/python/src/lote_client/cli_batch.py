"""`lote batch …`: submit a CSV or JSONL file, follow it with a progress bar, list, retry, cancel,
fetch results and images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lote_client import _progress
from lote_client._cli_common import INCOMPLETE, INTERRUPTED, OK, client, command, emit, err, params_of
from lote_client.client import Lote


@click.group()
def batch() -> None:
    """Batches: submit, follow, fetch."""


@batch.command("submit")
@click.argument("items_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--preset", help="Default preset for every item.")
@click.option("--prompt", help="Default prompt for every item.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Default preset parameter.")
@click.option("--priority", type=click.Choice(["express", "standard", "economy"]), help="Scheduling tier.")
@click.option(
    "--idempotency-key",
    help="Resubmitting the same file with the same key returns the same batch.",
)
@click.option("--wait", is_flag=True, help="Follow the batch with a progress bar until it ends.")
@click.option(
    "--download",
    "download_to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Then save every image here (implies --wait).",
)
@click.option("--concurrency", default=16, show_default=True, help="Parallel downloads.")
@command
def batch_submit(
    obj: dict[str, Any],
    items_file: Path,
    preset: str | None,
    prompt: str | None,
    params: tuple[str, ...],
    priority: str | None,
    idempotency_key: str | None,
    wait: bool,
    download_to: Path | None,
    concurrency: int,
) -> int:
    """Submit a batch from a CSV or JSONL file (over 10,000 items go up as a manifest)."""
    lote = client(obj)
    defaults = {
        k: v
        for k, v in {"preset": preset, "prompt": prompt, "params": params_of(params) or None}.items()
        if v
    }
    accepted = lote.batches.create(
        items_file, defaults=defaults or None, priority=priority, idempotency_key=idempotency_key
    )
    if not (wait or download_to):
        emit(obj, accepted, f"{accepted.id} accepted: {accepted.total} items")
        return OK
    try:  # from here on a Ctrl-C leaves a batch that exists: say how to pick it up again
        if not obj["json"]:
            err.print(f"batch [bold]{accepted.id}[/bold]: {accepted.total} items")
        return _follow(obj, lote, accepted.id, download_to, concurrency)
    except KeyboardInterrupt:
        return _interrupted(accepted.id)


def _interrupted(batch_id: str) -> int:
    err.print(
        f"\nStopped following. Batch {batch_id} goes on: `lote batch status {batch_id}`; "
        f"`lote batch download {batch_id} DIR` fetches (and resumes) its images."
    )
    return INTERRUPTED


def _follow(
    obj: dict[str, Any], lote: Lote, batch_id: str, download_to: Path | None, concurrency: int
) -> int:
    try:
        final = _progress.wait(lote, batch_id, quiet=obj["json"])
        report = None
        if download_to is not None:
            report = _progress.download(lote, batch_id, download_to, concurrency, quiet=obj["json"])
    except KeyboardInterrupt:
        return _interrupted(batch_id)
    summary = final.model_dump(mode="json", exclude_none=True)
    counts = final.counts
    text = f"{batch_id} {final.status}: {counts.succeeded} succeeded, {counts.failed} failed"
    text += f", {counts.canceled} canceled"
    if report is not None:
        summary["download"] = _progress.report_dict(report)
        text += (
            f"; {report.downloaded} downloaded, {report.skipped} already there, {len(report.failed)} failed"
        )
    emit(obj, summary, text)
    return OK if counts.succeeded == counts.total and not (report and report.failed) else INCOMPLETE


@batch.command("status")
@click.argument("batch_id")
@click.option("--wait", is_flag=True, help="Follow it until it ends.")
@command
def batch_status(obj: dict[str, Any], batch_id: str, wait: bool) -> int:
    """A batch's status and counts."""
    if wait:
        return _follow(obj, client(obj), batch_id, None, 0)
    found = client(obj).batches.get(batch_id)
    c = found.counts
    emit(
        obj,
        found,
        f"{found.id} {found.status} {found.progress:.0f}%: {c.succeeded} succeeded, {c.failed} failed, "
        f"{c.running} running, {c.queued} queued, {c.canceled} canceled (of {c.total})",
    )
    return OK


@batch.command("items")
@click.argument("batch_id")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "canceled"]))
@command
def batch_items(obj: dict[str, Any], batch_id: str, status: str | None) -> int:
    """Every item (optionally of one status), in input order: one line each."""
    for item in client(obj).batches.iter_items(batch_id, status=status):
        reason = f" {item.error.code}: {item.error.message}" if item.error else ""
        emit(obj, item, f"{item.index}\t{item.reference}\t{item.status}{reason}")
    return OK


@batch.command("retry")
@click.argument("batch_id")
@click.option("--include-permanent", is_flag=True, help="Also items whose failure was permanent.")
@click.option(
    "--error-code", "error_codes", multiple=True, help="Only items failed with this code (repeatable)."
)
@command
def batch_retry(
    obj: dict[str, Any], batch_id: str, include_permanent: bool, error_codes: tuple[str, ...]
) -> int:
    """Queue a batch's failed items again."""
    retried = client(obj).batches.retry(batch_id, include_permanent, list(error_codes) or None)
    emit(obj, {"retried": retried}, f"{retried} items queued again")
    return OK


@batch.command("cancel")
@click.argument("batch_id")
@command
def batch_cancel(obj: dict[str, Any], batch_id: str) -> int:
    """Cancel a batch: queued items at once, running ones finish."""
    answer = client(obj).batches.cancel(batch_id)
    emit(
        obj,
        answer,
        f"{batch_id} {answer['status']}: {answer['canceled']} canceled, {answer['running']} still running",
    )
    return OK


@batch.command("results")
@click.argument("batch_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSONL here.")
@command
def batch_results(obj: dict[str, Any], batch_id: str, output: Path | None) -> int:
    """results.jsonl: every item as a JSON line (to stdout, or --output)."""
    lines = (json.dumps(row) + "\n" for row in client(obj).batches.results(batch_id))
    if output is None:
        for line in lines:
            click.echo(line, nl=False)
        return OK
    with output.open("w") as handle:
        count = sum(1 for line in lines if handle.write(line))
    emit(obj, {"items": count, "path": str(output)}, f"{count} items written to {output}")
    return OK


@batch.command("download")
@click.argument("batch_id")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--concurrency", default=16, show_default=True, help="Parallel downloads.")
@command
def batch_download(obj: dict[str, Any], batch_id: str, out_dir: Path, concurrency: int) -> int:
    """Save every succeeded item's image, named by its reference; rerun to resume."""
    try:
        report = _progress.download(client(obj), batch_id, out_dir, concurrency, quiet=obj["json"])
    except KeyboardInterrupt:
        err.print(f"\nStopped. Run `lote batch download {batch_id} {out_dir}` again to resume.")
        return INTERRUPTED
    emit(
        obj,
        _progress.report_dict(report),
        f"{report.downloaded} downloaded, {report.skipped} already there, {len(report.failed)} failed",
    )
    for failure in report.failed if not obj["json"] else []:
        err.print(f"[red]failed[/red] {failure.reference}: {failure.error}")
    return INCOMPLETE if report.failed else OK
