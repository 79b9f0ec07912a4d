"""Verifying the OIDC token Cloud Tasks (or Cloud Scheduler) attaches to calls of the worker."""

from __future__ import annotations

import threading
import time
from typing import Any

from lote.errors import Forbidden, Unauthenticated
from lote.settings import Settings

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CERTS_TTL_S = 300.0


class _CachedRequest:  # google.auth.transport.Request by duck typing
    """A google.auth transport that caches GETs of the certs URL (keys rotate about daily)."""

    def __init__(self) -> None:
        import google.auth.transport.requests

        self._inner = google.auth.transport.requests.Request()
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        if method != "GET":
            return self._inner(url, method=method, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
            if hit and hit[0] > time.monotonic():
                return hit[1]
        response = self._inner(url, method=method, **kwargs)
        if response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic() + CERTS_TTL_S, response)
        return response


_request: _CachedRequest | None = None
_request_lock = threading.Lock()


def _transport() -> _CachedRequest:
    global _request
    with _request_lock:
        if _request is None:
            _request = _CachedRequest()
        return _request


def verify(settings: Settings, authorization: str | None) -> dict[str, Any]:
    """Claims of a valid token for the worker's URL from the configured invoker; 401 or 403 otherwise."""
    from google.auth import exceptions as auth_exceptions
    from google.oauth2 import id_token

    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("missing OIDC token", headers={"WWW-Authenticate": "Bearer"})
    try:
        claims = dict(
            id_token.verify_token(
                token,
                _transport(),  # type: ignore[arg-type]
                audience=settings.worker_url,
                certs_url=settings.oidc_certs_url,
            )
        )
    except (ValueError, auth_exceptions.GoogleAuthError) as exc:
        raise Unauthenticated(f"invalid OIDC token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise Unauthenticated("OIDC token not issued by Google")
    if claims.get("email") != settings.tasks_invoker_email or not claims.get("email_verified"):
        raise Forbidden("this service account may not call the worker", {"email": claims.get("email")})
    return claims
