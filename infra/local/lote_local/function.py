"""Run one Cloud Function locally as `functions-framework --target T --source S` does (the same app,
the same gunicorn server with THREADS threads), with one difference: idle keep-alive connections
stay open for `--keepalive-s` instead of gunicorn's 2 s.

Deployed, a client never talks to gunicorn: Google's front end holds its connection (HTTP(S) load
balancers keep idle client connections 610 s). Locally, clients talk to gunicorn directly, and one
that honours a Retry-After of 2 s or more found its kept-alive connection closed as it sent the next
request: `Connection reset by peer` for a request the api never read (a test, and 38 of ~2,400
answers of the admission bench at 128 clients, failed that way). See the decision note
2026-12-05-local-keepalive.md."""

from __future__ import annotations

import argparse

from functions_framework import create_app
from functions_framework._http import create_server

KEEPALIVE_S = 75


def main() -> None:
    """Command line: python -m lote_local.function --target api --source functions/main.py --port N."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keepalive-s", type=int, default=KEEPALIVE_S)
    args = parser.parse_args()
    app = create_app(args.target, args.source)
    create_server(app, False, keepalive=args.keepalive_s).run(args.host, args.port)


if __name__ == "__main__":
    main()
