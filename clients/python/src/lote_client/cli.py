"""`lote`: the command line, built on the client. Every command takes `--json`; exit codes are stable:
0 done, 1 finished but not all succeeded, 2 usage (bad arguments, a bad items file, a missing
setting, a local file), 3 refused by the API (4xx), 4 unreachable or server error, 5 wait timed
out, 6 webhook not verified, 130 interrupted (the work goes on)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lote_client import webhooks
from lote_client._cli_common import (  # noqa: F401 (the exit codes are part of this module's interface)
    INCOMPLETE,
    INTERRUPTED,
    OK,
    REFUSED,
    TIMED_OUT,
    UNREACHABLE,
    UNVERIFIED,
    USAGE,
    _exit_code,
    client,
    command,
    emit,
    params_of,
)
from lote_client.cli_account import spend_controls, usage
from lote_client.cli_batch import batch


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


main.add_command(batch)
main.add_command(usage)
main.add_command(spend_controls)


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
