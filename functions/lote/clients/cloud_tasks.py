"""Cloud Tasks, built on first use; locally the same client over an insecure channel to the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lote.clients.lazy import Lazy
from lote.settings import Settings

if TYPE_CHECKING:
    from google.cloud import tasks_v2


class TasksClient:
    """Holds one google-cloud-tasks client per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Lazy[tasks_v2.CloudTasksClient] = Lazy(self._build)

    @property
    def client(self) -> tasks_v2.CloudTasksClient:
        """The Cloud Tasks client, created on first access."""
        return self._client.get()

    def _build(self) -> tasks_v2.CloudTasksClient:
        from google.cloud import tasks_v2

        host = self._settings.cloud_tasks_emulator_host
        if not host:
            return tasks_v2.CloudTasksClient()
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        transport = CloudTasksGrpcTransport(channel=grpc.insecure_channel(host))
        return tasks_v2.CloudTasksClient(transport=transport)

    def queue_path(self, queue: str) -> str:
        """Full name of a queue in this project and location."""
        s = self._settings
        return f"projects/{s.project_id}/locations/{s.location}/queues/{queue}"

    def create_http_task(
        self,
        queue: str,
        task_id: str,
        url: str,
        body: bytes,
        *,
        audience: str,
        invoker: str,
        deadline_s: int,
        delay_s: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> bool:
        """Create a named POST task with an OIDC token; False when the name is taken (already enqueued)."""
        import datetime as dt

        from google.api_core.exceptions import AlreadyExists
        from google.cloud import tasks_v2

        task = tasks_v2.Task(
            name=f"{self.queue_path(queue)}/tasks/{task_id}",
            dispatch_deadline=dt.timedelta(seconds=deadline_s),
            http_request=tasks_v2.HttpRequest(
                url=url,
                http_method=tasks_v2.HttpMethod.POST,
                headers={"Content-Type": "application/json", **(headers or {})},
                body=body,
                oidc_token=tasks_v2.OidcToken(service_account_email=invoker, audience=audience),
            ),
        )
        if delay_s > 0:
            task.schedule_time = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay_s)
        try:
            self.client.create_task(parent=self.queue_path(queue), task=task, timeout=10.0)
        except AlreadyExists:
            return False
        return True

    def exists(self, queue: str, task_id: str) -> bool:
        """Whether the named task is still in its queue (GetTask). Cloud Tasks deletes a task once it
        is acknowledged or has exhausted its retries, so False means nothing will run it again."""
        from google.api_core.exceptions import NotFound

        try:
            self.client.get_task(name=f"{self.queue_path(queue)}/tasks/{task_id}", timeout=10.0)
        except NotFound:
            return False
        return True
