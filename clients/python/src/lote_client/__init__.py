"""lote's Python client: `Lote` (sync) and `AsyncLote`, typed models, typed errors, webhook checks."""

from lote_client._download import FileResult, Report
from lote_client._http import RetryPolicy, __version__
from lote_client.aio import AsyncLote
from lote_client.client import Lote
from lote_client.errors import (
    APIError,
    AuthenticationError,
    Conflict,
    ConnectionFailed,
    InsufficientCredits,
    InvalidRequest,
    LoteError,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    SpendCapReached,
    WaitTimeout,
    WebhookVerificationError,
)
from lote_client.models import (
    Accepted,
    Batch,
    BatchAccepted,
    BatchSummary,
    Generation,
    Item,
    Preset,
    Quality,
    SpendControls,
    Usage,
)

__all__ = [
    "APIError", "Accepted", "AsyncLote", "AuthenticationError", "Batch", "BatchAccepted", "BatchSummary",
    "Conflict", "ConnectionFailed", "FileResult", "Generation", "InsufficientCredits", "InvalidRequest",
    "Item", "Lote", "LoteError", "NotFound", "PermissionDenied", "Preset", "Quality", "RateLimited",
    "Report", "RetryPolicy", "ServerError", "SpendCapReached", "SpendControls", "Usage", "WaitTimeout",
    "WebhookVerificationError", "__version__",
]  # fmt: skip
