"""Firestore, built on first use; the emulator endpoint comes from settings."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lote.clients.lazy import Lazy
from lote.settings import Settings

if TYPE_CHECKING:
    from google.cloud import firestore

_EMULATOR_VAR = "FIRESTORE_EMULATOR_HOST"
_ENV_LOCK = threading.Lock()
# A listen stream can stall silently: a wait checks with a plain read after these many seconds,
# then twice as long each time (5, 15, 35, 60 s: 4 reads in a minute-long wait, not 12).
RECHECK_S = 5.0
log = logging.getLogger("lote.firestore")


class FirestoreClient:
    """Holds one google-cloud-firestore client per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Lazy[firestore.Client] = Lazy(self._build)

    @property
    def db(self) -> firestore.Client:
        """The Firestore client, created on first access."""
        return self._client.get()

    def _build(self) -> firestore.Client:
        from google.cloud import firestore

        # The library reads the emulator address from this variable, once, in the constructor:
        # set it from settings for that moment only, then put it back.
        host = self._settings.firestore_emulator_host
        with _ENV_LOCK:
            saved = os.environ.pop(_EMULATOR_VAR, None)
            try:
                if host:
                    os.environ[_EMULATOR_VAR] = host
                return firestore.Client(project=self._settings.project_id)
            finally:
                os.environ.pop(_EMULATOR_VAR, None)
                if saved is not None:
                    os.environ[_EMULATOR_VAR] = saved


def wait_for(
    ref: firestore.DocumentReference,
    done: Callable[[firestore.DocumentSnapshot], bool],
    timeout_s: float,
    recheck_s: float = RECHECK_S,
) -> firestore.DocumentSnapshot | None:
    """The first snapshot of `ref` for which `done` holds, or None after `timeout_s`. One listen
    stream: Firestore pushes each change (a read each), so waiting costs no polling. A stream can
    stall without an error reaching us, so a plain read checks after `recheck_s`, then at doubling
    intervals, and at the deadline: a stall costs seconds, never the wait or a stale answer."""
    from google.api_core.exceptions import GoogleAPICallError

    found: list[firestore.DocumentSnapshot] = []
    arrived = threading.Event()

    def on_snapshot(snapshots: list[firestore.DocumentSnapshot], *_: object) -> None:
        for snapshot in snapshots:
            if not arrived.is_set() and done(snapshot):
                found.append(snapshot)
                arrived.set()

    deadline = time.monotonic() + timeout_s
    pause = recheck_s
    watch = ref.on_snapshot(on_snapshot)
    try:
        while not arrived.wait(max(0.0, min(pause, deadline - time.monotonic()))):
            pause *= 2
            try:
                snapshot = ref.get()
            except GoogleAPICallError as exc:  # the check is a backstop: its failure ends nothing
                log.info("check read of %s failed, still waiting: %s", ref.path, exc)
            else:
                if done(snapshot):
                    log.info("a check read of %s saw the change before its listen stream did", ref.path)
                    return snapshot
            if time.monotonic() >= deadline:
                return None
    finally:
        watch.unsubscribe()
    return found[0]
