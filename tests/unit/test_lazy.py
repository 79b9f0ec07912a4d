"""clients/lazy.py: a client is built once, whoever asks first, and a failed build is tried again."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from lote.clients.lazy import Lazy


def test_many_threads_asking_at_once_build_it_once():
    builds, gate = [], threading.Event()

    def build() -> object:
        gate.wait(5)
        builds.append(1)
        return object()

    lazy = Lazy(build)
    with ThreadPoolExecutor(8) as pool:
        results = [pool.submit(lazy.get) for _ in range(8)]
        gate.set()
        values = {id(r.result()) for r in results}
    assert len(builds) == 1 and len(values) == 1


def test_a_build_that_fails_is_tried_again_on_the_next_use():
    attempts = []

    def build() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("not configured")
        return "client"

    lazy = Lazy(build)
    with pytest.raises(RuntimeError):
        lazy.get()
    assert lazy.get() == "client" and lazy.get() == "client" and len(attempts) == 2
