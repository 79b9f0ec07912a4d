"""Cloud Tasks, built on first use; locally the same client over an insecure channel to the emulator."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lote.settings import Settings

if TYPE_CHECKING:
    from google.cloud import tasks_v2


class TasksClient:
    """Holds one google-cloud-tasks client per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._client: tasks_v2.CloudTasksClient | None = None

    @property
    def client(self) -> tasks_v2.CloudTasksClient:
        """The Cloud Tasks client, created on first access."""
        with self._lock:
            if self._client is None:
                from google.cloud import tasks_v2

                host = self._settings.cloud_tasks_emulator_host
                if host:
                    import grpc
                    from google.cloud.tasks_v2.services.cloud_tasks.transports import (
                        CloudTasksGrpcTransport,
                    )

                    channel = grpc.insecure_channel(host)
                    transport = CloudTasksGrpcTransport(channel=channel)
                    self._client = tasks_v2.CloudTasksClient(transport=transport)
                else:
                    self._client = tasks_v2.CloudTasksClient()
            return self._client

    def queue_path(self, queue: str) -> str:
        """Full name of a queue in this project and location."""
        s = self._settings
        return f"projects/{s.project_id}/locations/{s.location}/queues/{queue}"
