"""`lote`: the command line, built on the client. Every command takes `--json`; exit codes are stable:
0 done, 1 finished but not all succeeded, 2 usage, 3 refused by the API (4xx), 4 unreachable or
server error, 5 wait timed out, 6 webhook not verified, 130 interrupted (the work goes on)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console

from lote_client import _progress, webhooks
from lote_client.client import Lote
from lote_client.errors import APIError, LoteError, WaitTimeout, WebhookVerificationError

OK, INCOMPLETE, REFUSED, UNREACHABLE, TIMED_OUT, UNVERIFIED, INTERRUPTED = 0, 1, 3, 4, 5, 6, 130
F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True, soft_wrap=True)  # commands in messages stay on one line, to copy


def _exit_code(exc: LoteError) -> int:
    if isinstance(exc, WebhookVerificationError):
        return UNVERIFIED
    if isinstance(exc, WaitTimeout):
        return TIMED_OUT
    if isinstance(exc, APIError) and 400 <= exc.status < 500:
        return REFUSED
    return UNREACHABLE if exc.status == 0 or exc.status >= 500 else REFUSED


def command(function: F) -> F:
    """A command's common parts: `--json`, the client from the group's options, errors as exit codes."""

    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @click.pass_context
    @functools.wraps(function)
    def run(ctx: click.Context, as_json: bool, **kwargs: Any) -> None:
        ctx.obj["json"] = as_json
        try:
            code = function(ctx.obj, **kwargs)
        except KeyboardInterrupt:
            err.print("\nInterrupted.")
            sys.exit(INTERRUPTED)
        except LoteError as exc:
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "error": {
                                "status": exc.status,
                                "code": exc.code,
                                "message": exc.message,
                                "details": exc.details,
                            }
                        }
                    )
                )
            else:
                err.print(f"[red]error[/red] {exc}")
            sys.exit(_exit_code(exc))
        sys.exit(code or OK)

    return run  # type: ignore[return-value]


def emit(obj: dict[str, Any], value: Any, text: str) -> None:
    """`value` as JSON with --json, else `text`."""
    if obj["json"]:
        data = value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else value
        click.echo(json.dumps(data, default=str))
    else:
        click.echo(text)


def client(obj: dict[str, Any]) -> Lote:
    """The client from --api-url / --api-key (or LOTE_API_URL / LOTE_API_KEY)."""
    if "client" not in obj:
        obj["client"] = Lote(obj["api_key"], base_url=obj["api_url"])
    lote: Lote = obj["client"]
    return lote


def params_of(pairs: tuple[str, ...]) -> dict[str, str]:
    """`--param name=value` pairs."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="--param")
        found[name] = value
    return found


@click.group()
@click.option("--api-url", envvar="LOTE_API_URL", help="The API's base URL (LOTE_API_URL).")
@click.option("--api-key", envvar="LOTE_API_KEY", help="Your secret key (LOTE_API_KEY).")
@click.version_option(package_name="lote-client")
@click.pass_context
def main(ctx: click.Context, api_url: str | None, api_key: str | None) -> None:
    """lote: generate images one at a time or by the thousand."""
    ctx.obj = {"api_url": api_url, "api_key": api_key}


@main.command()
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--prompt", "-p", help="What to draw (or use --preset).")
@click.option("--preset", help="A named template (see `lote presets`).")
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="A preset parameter (repeatable)."
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Where to save the image.")
@click.option("--model", help="The image model.")
@click.option("--aspect-ratio", help="e.g. 16:9 (default: the input's).")
@click.option(
    "--format", "output_format", type=click.Choice(["png", "jpeg", "webp"]), help="The output format."
)
@click.option("--verify/--no-verify", default=None, help="Verify the image (a preset's default otherwise).")
@click.option(
    "--require-quality-pass", is_flag=True, default=None, help="Fail (refunded) if it never passes."
)
@click.option("--no-wait", is_flag=True, help="Print the id and return at once.")
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds to wait for the image.")
@command
def generate(
    obj: dict[str, Any],
    images: tuple[Path, ...],
    params: tuple[str, ...],
    output: Path | None,
    no_wait: bool,
    timeout: float,
    **fields: Any,
) -> int:
    """Make one image (local IMAGES are uploaded), wait for it and save it."""
    lote = client(obj)
    generation = lote.generations.create(
        images=list(images), params=params_of(params) or None, wait=False if no_wait else timeout, **fields
    )
    if no_wait:
        emit(obj, generation, generation.id)
        return OK
    if generation.status != "succeeded":
        reason = generation.error.message if generation.error else generation.status
        emit(obj, generation, f"{generation.id} {generation.status}: {reason}")
        return INCOMPLETE
    target = lote.generations.download(generation, output or Path.cwd())
    quality = (
        f" (quality {'passed' if generation.quality.passed else 'NOT passed'})" if generation.quality else ""
    )
    emit(
        obj,
        {**generation.model_dump(mode="json", exclude_none=True), "saved_to": str(target)},
        f"{target}{quality}",
    )
    return OK


@main.command()
@command
def presets(obj: dict[str, Any]) -> int:
    """The presets: parameters, steps and price."""
    found = client(obj).presets.list()
    lines = [f"{p.name:18} {p.price} credit(s)  {' → '.join(p.steps)}  {p.description}" for p in found]
    emit(obj, [p.model_dump(mode="json", exclude_none=True) for p in found], "\n".join(lines))
    return OK


@main.group()
def batch() -> None:
    """Batches: submit, follow, fetch."""


@batch.command("submit")
@click.argument("items_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--preset", help="Default preset for every item.")
@click.option("--prompt", help="Default prompt for every item.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Default preset parameter.")
@click.option("--priority", type=click.Choice(["express", "standard", "economy"]), help="Scheduling tier.")
@click.option("--idempotency-key", help="Resubmitting with the same key returns the same batch.")
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


@main.group("webhooks")
def webhooks_group() -> None:
    """Webhooks."""


@webhooks_group.command("verify")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    envvar="LOTE_WEBHOOK_SECRET",
    required=True,
    help="whsec_ secret (repeat during a rotation; LOTE_WEBHOOK_SECRET).",
)
@click.option(
    "--headers",
    "headers_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The request's headers: a JSON object, or `Name: value` lines.",
)
@click.option(
    "--body",
    "body_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The request's raw body, byte for byte.",
)
@click.option(
    "--tolerance",
    default=webhooks.TOLERANCE_S,
    show_default=True,
    help="Seconds of clock difference allowed.",
)
@command
def webhooks_verify(
    obj: dict[str, Any], secrets: tuple[str, ...], headers_file: Path, body_file: Path, tolerance: int
) -> int:
    """Check a captured delivery's signature; print its event."""
    text = headers_file.read_text()
    try:
        headers = json.loads(text)
    except ValueError:
        headers = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    headers = {str(k).strip(): str(v).strip() for k, v in headers.items()}
    event = webhooks.verify(headers, body_file.read_bytes(), list(secrets), tolerance_s=tolerance)
    emit(
        obj,
        event,
        f"verified: {event.get('type')} {headers.get('webhook-id') or headers.get('Webhook-Id', '')}",
    )
    return OK
