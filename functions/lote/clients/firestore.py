"""Firestore, built on first use (the emulator is found through FIRESTORE_EMULATOR_HOST)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lote.settings import Settings

if TYPE_CHECKING:
    from google.cloud import firestore


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

                self._client = firestore.Client(project=self._settings.project_id)
            return self._client
