"""The one error hierarchy: each class carries its HTTP status and a stable error code."""

from __future__ import annotations

from typing import Any, ClassVar


class LoteError(Exception):
    """Base of every error lote answers with; rendered as {"error": {code, message, details}}."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, details: Any = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details if details is not None else {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body of the error response."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidRequest(LoteError):
    """The request is malformed; details name the fields."""

    status, code = 400, "invalid_request"


class Unauthenticated(LoteError):
    """No valid credentials."""

    status, code = 401, "unauthenticated"


class Forbidden(LoteError):
    """Credentials valid but not allowed here."""

    status, code = 403, "forbidden"


class NotFound(LoteError):
    """No such resource (or not the caller's)."""

    status, code = 404, "not_found"


class MethodNotAllowed(LoteError):
    """The route exists, the method does not."""

    status, code = 405, "method_not_allowed"


class Conflict(LoteError):
    """The resource's state forbids the change."""

    status, code = 409, "conflict"


class PayloadTooLarge(LoteError):
    """The body is over the limit."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(LoteError):
    """The body is not JSON."""

    status, code = 415, "unsupported_media_type"


class TooManyRequests(LoteError):
    """Slow down; Retry-After says when to come back."""

    status, code = 429, "rate_limited"


class Unavailable(LoteError):
    """A dependency is down; retry later."""

    status, code = 503, "unavailable"
