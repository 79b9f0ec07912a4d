"""Cloud Storage, built on first use; the emulator endpoint comes from settings."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lote.clients.lazy import Lazy
from lote.settings import Settings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import storage  # type: ignore[attr-defined]


class ObjectTooLarge(Exception):
    """An object is bigger than the caller accepts."""


class StorageClient:
    """Holds one google-cloud-storage client per process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()  # the URL cache
        self._client: Lazy[storage.Client] = Lazy(self._build)
        self._local_signer: Lazy[Credentials] = Lazy(self._local_credentials)
        self._urls: dict[tuple[str, str], tuple[float, str]] = {}

    @property
    def client(self) -> storage.Client:
        """The storage client, created on first access."""
        return self._client.get()

    def _build(self) -> storage.Client:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[attr-defined]

        endpoint = self._settings.storage_emulator_host
        if endpoint:
            return storage.Client(
                project=self._settings.project_id,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": endpoint},
            )
        return storage.Client(project=self._settings.project_id)

    def put_once(self, bucket: str, name: str, data: bytes, content_type: str) -> bool:
        """Write an object unless it exists (generation precondition 0); True when this call wrote it."""
        from google.api_core.exceptions import PreconditionFailed

        blob = self.client.bucket(bucket).blob(name)
        try:
            blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
        except PreconditionFailed:
            return False
        return True

    def copy_once(self, bucket: str, name: str, to_bucket: str, to_name: str) -> bool | None:
        """Copy an object inside Cloud Storage (its bytes never pass through here) unless the target
        exists: True when this call wrote it, False when it existed, None when the source is gone."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        source = self.client.bucket(bucket)
        try:
            source.copy_blob(source.blob(name), self.client.bucket(to_bucket), to_name, if_generation_match=0)
        except PreconditionFailed:
            return False
        except NotFound:
            return None
        return True

    def read(
        self, bucket: str, name: str, max_bytes: int, after: Callable[[int], None] | None = None
    ) -> bytes | None:
        """An object's bytes as stored (None if missing); ObjectTooLarge past `max_bytes`. `after(n)`
        is told how many bytes were read (the worker gives back memory it reserved for more)."""
        blob = self.client.bucket(bucket).get_blob(name)
        if blob is None:
            return None
        if (blob.size or 0) > max_bytes:
            raise ObjectTooLarge(f"gs://{bucket}/{name} is {blob.size} bytes; the limit is {max_bytes}")
        # Raw: an object stored gzip-encoded is not inflated here (nor by GCS), so its size is the bound.
        data: bytes = blob.download_as_bytes(raw_download=True)
        if after is not None:
            after(len(data))
        return data

    def read_range(self, bucket: str, name: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object."""
        data: bytes = self.client.bucket(bucket).blob(name).download_as_bytes(start=start, end=end - 1)
        return data

    def exists(self, bucket: str, name: str) -> bool:
        """Whether the object exists."""
        return bool(self.client.bucket(bucket).blob(name).exists())

    def names(self, bucket: str, prefix: str) -> list[str]:
        """Names of the objects under `prefix`."""
        return [blob.name for blob in self.client.list_blobs(bucket, prefix=prefix)]

    def delete(self, bucket: str, name: str) -> None:
        """Delete an object if it exists."""
        from google.api_core.exceptions import NotFound

        try:
            self.client.bucket(bucket).blob(name).delete()
        except NotFound:
            return

    def signed_url(self, bucket: str, name: str, ttl: dt.timedelta, method: str = "GET", **extra: Any) -> str:
        """A V4 signed URL: signBlob through IAM in production, a local key against the emulator."""
        blob = self.client.bucket(bucket).blob(name)
        options: dict[str, Any] = {"version": "v4", "expiration": ttl, "method": method, **extra}
        endpoint = self._settings.storage_emulator_host
        if endpoint:
            options.update(credentials=self._local_signer.get(), api_access_endpoint=endpoint)
        else:
            options.update(self._iam_signing())
        return str(blob.generate_signed_url(**options))

    def cached_signed_url(self, bucket: str, name: str, ttl: dt.timedelta) -> str:
        """A GET signed URL, reused while more than half its life remains (each may cost a signBlob)."""
        key = (bucket, name)
        with self._lock:
            hit = self._urls.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        url = self.signed_url(bucket, name, ttl)
        with self._lock:
            self._urls[key] = (time.monotonic() + ttl.total_seconds() / 2, url)
        return url

    def _iam_signing(self) -> dict[str, Any]:
        """signBlob arguments: serverless runtimes have no private key (needs TokenCreator on self)."""
        import google.auth
        import google.auth.transport.requests

        credentials, _ = google.auth.default()
        credentials.refresh(google.auth.transport.requests.Request())
        email = self._settings.signing_service_account or getattr(credentials, "service_account_email", None)
        return {"service_account_email": email, "access_token": credentials.token}

    def _local_credentials(self) -> Credentials:
        """A throwaway service-account key: the emulator serves signed URLs without checking them."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from google.oauth2 import service_account

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        credentials: Credentials = service_account.Credentials.from_service_account_info(
            {
                "type": "service_account",
                "client_email": f"lote-local@{self._settings.project_id}.iam.gserviceaccount.com",
                "private_key": pem,
                "private_key_id": "local",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
        return credentials
