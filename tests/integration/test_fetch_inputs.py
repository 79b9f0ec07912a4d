"""The input fetcher against real local servers: redirects re-checked, size and time bounded."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lote.jobs.inputs import FetchPolicy, InputError, fetch


class _Server:
    def __init__(self, host: str, routes: dict[str, tuple[int, dict[str, str], bytes, float]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body, delay = routes.get(self.path, (404, {}, b"", 0.0))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self.server.server_port}"


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    routes: dict[str, tuple[int, dict[str, str], bytes, float]] = {}
    allowed, forbidden = _Server("127.0.0.1", routes), _Server("127.0.0.2", routes)
    routes.update({
        "/ok.png": (200, {}, b"image bytes", 0.0),
        "/hop": (302, {"Location": "/ok.png"}, b"", 0.0),
        "/escape": (302, {"Location": forbidden.url + "/ok.png"}, b"", 0.0),
        "/big": (200, {}, b"x" * 2048, 0.0),
        "/slow": (200, {}, b"late", 3.0),
        "/loop": (302, {"Location": "/loop"}, b"", 0.0),
        "/busy": (503, {}, b"", 0.0),
    })  # fmt: skip
    yield allowed, forbidden
    for s in (allowed, forbidden):
        s.server.shutdown()
        s.server.server_close()


# Plain http to 127.0.0.1 only: a stand-in for "https to public addresses" that can run offline.
POLICY = FetchPolicy(
    schemes=frozenset({"http"}),
    allow_ip=lambda ip: ip == ipaddress.ip_address("127.0.0.1"),
    timeout_s=1.0,
    max_bytes=1024,
)


def test_follows_allowed_redirects(servers):
    allowed, _ = servers
    assert fetch(allowed.url + "/hop", POLICY) == b"image bytes"


@pytest.mark.parametrize(
    ("path", "code", "retryable"),
    [
        ("/escape", "input_forbidden", False),  # the redirect target is re-checked
        ("/big", "input_too_large", False),
        ("/slow", "input_fetch_failed", True),
        ("/loop", "input_fetch_failed", False),
        ("/missing", "input_not_found", False),
        ("/busy", "input_fetch_failed", True),
    ],
)
def test_refusals_and_failures(servers, path: str, code: str, retryable: bool):
    allowed, _ = servers
    with pytest.raises(InputError) as caught:
        fetch(allowed.url + path, POLICY)
    assert (caught.value.code, caught.value.retryable) == (code, retryable)


def test_scheme_not_in_policy_is_refused(servers):
    _, forbidden = servers
    with pytest.raises(InputError, match="only http"):
        fetch(forbidden.url.replace("http", "ftp") + "/ok.png", POLICY)
    with pytest.raises(InputError) as caught:
        fetch(forbidden.url + "/ok.png", POLICY)
    assert caught.value.code == "input_forbidden"
