"""The local stack, started once per test session on free ports, and per-test isolation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.cloud import tasks_v2, tasks_v2beta3
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.cloud.tasks_v2beta3.services.cloud_tasks.transports import (
    CloudTasksGrpcTransport as BetaTransport,
)

from lote_local.config import StackConfig
from lote_local.stack import Stack
from tests.support import Target


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every local service, healthy, on free ports."""
    running = Stack(StackConfig.ephemeral(tmp_path_factory.mktemp("stack")))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def tasks_client(stack: Stack) -> tasks_v2.CloudTasksClient:
    """The unmodified google-cloud-tasks client over a channel to the emulator."""
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.config.tasks_port}")
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


@pytest.fixture(scope="session")
def tasks_beta(stack: Stack) -> tasks_v2beta3.CloudTasksClient:
    """The v2beta3 client: the only API version that reports queue stats."""
    channel = grpc.insecure_channel(f"127.0.0.1:{stack.config.tasks_port}")
    return tasks_v2beta3.CloudTasksClient(transport=BetaTransport(channel=channel))


@pytest.fixture
def parent() -> str:
    """A location in a project of this test's own."""
    return f"projects/t-{uuid.uuid4().hex[:12]}/locations/us-central1"


@pytest.fixture
def target() -> Iterator[Target]:
    """A scriptable HTTP target for dispatches."""
    server = Target()
    yield server
    server.close()
