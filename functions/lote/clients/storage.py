"""Cloud Storage, built on first use; the emulator endpoint comes from settings."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lote.settings import Settings

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[attr-defined]


class StorageClient:
    """Holds one google-cloud-storage client per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: storage.Client | None = None

    @property
    def client(self) -> storage.Client:
        """The storage client, created on first access."""
        with self._lock:
            if self._client is None:
                from google.auth.credentials import AnonymousCredentials
                from google.cloud import storage  # type: ignore[attr-defined]

                endpoint = self._settings.storage_emulator_host
                if endpoint:
                    self._client = storage.Client(
                        project=self._settings.project_id,
                        credentials=AnonymousCredentials(),
                        client_options={"api_endpoint": endpoint},
                    )
                else:
                    self._client = storage.Client(project=self._settings.project_id)
            return self._client
