"""Firestore, built on first use; the emulator endpoint comes from settings."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from lote.settings import Settings

if TYPE_CHECKING:
    from google.cloud import firestore

_EMULATOR_VAR = "FIRESTORE_EMULATOR_HOST"


class FirestoreClient:
    """Holds one google-cloud-firestore client per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: firestore.Client | None = None

    @property
    def db(self) -> firestore.Client:
        """The Firestore client, created on first access."""
        with self._lock:
            if self._client is None:
                from google.cloud import firestore

                host = self._settings.firestore_emulator_host
                if host:
                    # The library finds the emulator only through this variable: make it agree
                    # with settings (the admin CLI reads them from .lote/local.env, not the shell).
                    os.environ[_EMULATOR_VAR] = host
                self._client = firestore.Client(project=self._settings.project_id)
            return self._client
