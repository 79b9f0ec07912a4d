"""Run the Cloud Tasks emulator: gRPC on one port, health and OIDC certs over HTTP on another."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc

from lote_local import queue_yaml
from lote_local.tasks.engine import Emulator
from lote_local.tasks.rules import RpcError
from lote_local.tasks.service import CloudTasksService, generic_handlers

log = logging.getLogger("lote.tasks")
CERTS_PATH = "/oauth2/v1/certs"


def _http_handler(engine: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body: Any
            if self.path == "/healthz":
                body = {"status": "ok", "service": "cloud-tasks-emulator"}
            elif self.path == CERTS_PATH:
                body = engine.minter.certs()
            elif self.path == "/stats":
                body = {"queues": engine.rates()}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def load_queue_yaml(engine: Emulator, path: Path, project: str, location: str) -> list[str]:
    """Create every queue of queue.yaml under projects/P/locations/L (existing ones are updated)."""
    parent = f"projects/{project}/locations/{location}"
    names = []
    for spec in queue_yaml.load(path):
        queue = spec.to_queue(parent)
        try:
            engine.create_queue(parent, queue)
        except RpcError as exc:
            if exc.code != grpc.StatusCode.ALREADY_EXISTS:
                raise
            engine.update_queue(queue, [])
        names.append(queue.name)
    return names


def main(argv: list[str] | None = None) -> None:
    """Command line: lote-tasks-emulator --port 8123 --http-port 8124 --queue-yaml queue.yaml."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="gRPC port")
    parser.add_argument("--http-port", type=int, required=True, help="health and certs port")
    parser.add_argument("--queue-yaml", type=Path)
    parser.add_argument("--project", default="lote-local")
    parser.add_argument("--location", default="us-central1")
    parser.add_argument(
        "--update-delay-s", type=float, default=0.0, help="how long an UpdateQueue takes to take effect"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    engine = Emulator(update_delay_s=args.update_delay_s)
    if args.queue_yaml:
        for name in load_queue_yaml(engine, args.queue_yaml, args.project, args.location):
            log.info("queue %s created from %s", name, args.queue_yaml)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="tasks-rpc"))
    server.add_generic_rpc_handlers(generic_handlers(CloudTasksService(engine)))
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    http = ThreadingHTTPServer((args.host, args.http_port), _http_handler(engine))
    threading.Thread(target=http.serve_forever, name="tasks-http", daemon=True).start()
    log.info("cloud tasks emulator on %s:%d (gRPC), http %d", args.host, args.port, args.http_port)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    http.shutdown()
    server.stop(grace=2).wait()
    engine.close()


if __name__ == "__main__":
    main()
