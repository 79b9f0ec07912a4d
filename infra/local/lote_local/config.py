"""Settings of the local stack launcher: ports, folders and model knobs, from the environment."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PICK_FROM = 10_000
_given: set[int] = set()


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (what bind(0) and outgoing connections use)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A port nothing listens on right now, picked below the kernel's ephemeral range.

    A port from bind(0) goes back to the kernel's pool when released, and the next bind(0) anywhere
    may get it before our service binds it: the Firestore emulator's websocket server once took the
    port picked for the emulator itself. Ports below the range are never handed out that way."""
    high = ephemeral_low() - 1
    for _ in range(500 if high > PICK_FROM else 0):
        port = random.randint(PICK_FROM, high)  # noqa: S311 (spreading picks, not a secret)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below the range
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackConfig(BaseSettings):
    """Where each local service listens and how the offline model behaves."""

    model_config = SettingsConfigDict(env_prefix="LOTE_", extra="ignore", populate_by_name=True)

    project_id: str = Field(
        "lote-local", validation_alias=AliasChoices("LOTE_PROJECT_ID", "GOOGLE_CLOUD_PROJECT")
    )
    location: str = "us-central1"
    state_dir: Path = Field(REPO_ROOT / ".lote", description="local.env and logs/ go here")
    api_port: int = 8080
    worker_port: int = 8081
    firestore_port: int = 8090
    storage_port: int = 8091
    tasks_port: int = 8092
    tasks_http_port: int = 8093
    model_port: int = 8094
    stripe_webhook_port: int = 8095
    stripe_port: int = 8096
    stripe_api_key: str = Field("sk_test_lote_local", description="the key the offline Stripe accepts")
    stripe_webhook_secret: str = Field("", description="its endpoint's signing secret; made up if empty")
    model_latency_ms: int = Field(0, ge=0, description="offline model's default latency")
    model_fault: str = Field("", description="offline model's default fault (see model_server.KNOBS)")
    model_long_edge: int = Field(512, ge=16, le=4096, description="pixels of the offline model's long edge")
    model_quota_rps: float = Field(0.0, ge=0, description="offline model's quota in requests/s (0: none)")
    function_threads: int = Field(16, ge=1, description="THREADS of the worker and stripe_webhook")
    api_threads: int = Field(
        64, ge=1, description="THREADS of the api: waits (Prefer: wait) hold threads, submissions take turns"
    )
    queue_yaml: Path = Field(REPO_ROOT / "queue.yaml", description="queue settings the emulator loads")
    tasks_update_delay_s: float = Field(
        0.0, ge=0, description="how long the Cloud Tasks emulator takes to apply an UpdateQueue"
    )
    model_timeout_s: float = Field(120.0, gt=0, description="the functions' model call timeout")
    admin_token: str = Field(
        "", description="LOTE_ADMIN_TOKEN for the functions; `make dev` makes one if empty"
    )
    start_timeout_s: float = Field(60.0, gt=0)
    gemini_api_key: str | None = Field(
        None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    use_vertexai: bool = Field(
        False, validation_alias=AliasChoices("LOTE_USE_VERTEXAI", "GOOGLE_GENAI_USE_VERTEXAI")
    )
    input_bucket: str = "lote-local-inputs"
    output_bucket: str = "lote-local-outputs"
    manifest_bucket: str = "lote-local-manifests"

    @property
    def offline_model(self) -> bool:
        """Start the offline model server unless a real Gemini is configured."""
        return not (self.gemini_api_key or self.use_vertexai)

    @classmethod
    def ephemeral(cls, state_dir: Path, project_id: str = "lote-test", **overrides: object) -> StackConfig:
        """A config on free ports, for tests and benchmarks that run beside `make dev`."""
        values: dict[str, object] = {name: free_port() for name in cls.port_fields()}
        # model_validate skips the environment: tests never reach a real Gemini by accident.
        return cls.model_validate({**values, "state_dir": state_dir, "project_id": project_id, **overrides})

    @classmethod
    def port_fields(cls) -> list[str]:
        """Names of the port settings."""
        return [name for name in cls.model_fields if name.endswith("_port")]
