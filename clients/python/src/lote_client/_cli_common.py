"""What every `lote` command shares: `--json`, the client from the group's options, and errors
turned into the exit codes a script relies on."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console

from lote_client.client import Lote
from lote_client.errors import APIError, ConnectionFailed, LoteError, WaitTimeout, WebhookVerificationError

OK, INCOMPLETE, USAGE, REFUSED, UNREACHABLE, TIMED_OUT, UNVERIFIED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 6, 130
F = TypeVar("F", bound=Callable[..., Any])
err = Console(stderr=True, soft_wrap=True)  # commands in messages stay on one line, to copy


def _exit_code(exc: LoteError) -> int:
    if isinstance(exc, WebhookVerificationError):
        return UNVERIFIED
    if isinstance(exc, WaitTimeout):
        return TIMED_OUT
    if isinstance(exc, ConnectionFailed):
        return UNREACHABLE
    if isinstance(exc, APIError):
        return UNREACHABLE if exc.status >= 500 else REFUSED
    return USAGE  # found here, before any request: a bad file, a missing setting, a wrong checksum


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
        except OSError as exc:  # a file to read or write here: the caller's to fix
            err.print(f"[red]error[/red] {exc}")
            sys.exit(USAGE)
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
