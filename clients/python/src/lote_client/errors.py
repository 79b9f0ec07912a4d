"""The exceptions the client raises: every API error carries the answer's status, code, message and
details (lote answers `{"error": {"code", "message", "details"}}`)."""

from __future__ import annotations

from typing import Any


class LoteError(Exception):
    """Anything the client could not do. `status` is the HTTP status (0 when no answer came)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details if details is not None else {}


class APIError(LoteError):
    """The API answered an error."""


class InvalidRequest(APIError):
    """400: a field is wrong; `details["field"]` names it."""


class AuthenticationError(APIError):
    """401: the key or token is missing, wrong, expired or revoked."""


class InsufficientCredits(APIError):
    """402: not enough credits; `details` has `required` and `available`."""


class PermissionDenied(APIError):
    """403: the key or token may not do this."""


class SpendCapReached(PermissionDenied):
    """403 `spend_cap_reached`: a daily or monthly cap you set; `details` has `period`, `cap`,
    `charged`, `required` and `resets_at`. Nothing was charged."""


class NotFound(APIError):
    """404: no such resource for this tenant."""


class Conflict(APIError):
    """409: the resource is not in a state that allows this (e.g. `batch_completed`)."""


class RateLimited(APIError):
    """429 after every retry: slow down."""


class ServerError(APIError):
    """5xx after every retry."""


class ConnectionFailed(LoteError):
    """No answer: the connection failed or timed out on every try."""


class WaitTimeout(LoteError):
    """A wait for a generation or batch ran past its timeout (the work goes on)."""


class WebhookVerificationError(LoteError):
    """A webhook's signature, id or timestamp does not check out: do not trust its body."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "webhook_invalid", message)


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest, 401: AuthenticationError, 402: InsufficientCredits, 403: PermissionDenied,
    404: NotFound, 409: Conflict, 429: RateLimited,
}  # fmt: skip
_BY_CODE: dict[str, type[APIError]] = {"spend_cap_reached": SpendCapReached}


def from_answer(status: int, body: Any, text: str = "") -> APIError:
    """The exception for an error answer (its JSON body, or the raw text when it is not lote's)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, details = (
            str(error.get("code", "error")),
            str(error.get("message", "")),
            error.get("details"),
        )
    else:
        code, message, details = f"http_{status}", text[:500] or f"HTTP {status}", None
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return kind(status, code, message, details)
