"""The `lote` command's entry point, importable without the `cli` extra: a plain
`pip install lote-client` installs the command too, and without click and rich it says in one line
what to install instead of a traceback."""

from __future__ import annotations

import sys

# The extra's modules: `pip install 'lote-client[cli]'` brings them.
CLI_MODULES = frozenset({"click", "rich"})
USAGE = 2  # the command line's exit code for a missing setting (lote_client/_cli_common.py)


def main() -> None:
    """Run the command line, or name the missing extra in one line (exit code 2)."""
    try:
        from lote_client.cli import main as cli
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in CLI_MODULES:
            raise
        print(
            f"lote: the command line needs {missing}, which the client alone does not install: "
            "pip install 'lote-client[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(USAGE) from None
    cli()


if __name__ == "__main__":
    main()
