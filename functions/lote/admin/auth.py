"""The admin token check: constant-time, and refusing everything when no token is configured."""

from __future__ import annotations

import hmac

from lote.errors import Forbidden, Unauthenticated
from lote.settings import Settings


class AdminDisabled(Forbidden):
    """No admin token is configured, so no admin route answers."""

    code = "admin_disabled"


def require_admin(settings: Settings, authorization: str | None) -> None:
    """Pass only with `Authorization: Bearer <LOTE_ADMIN_TOKEN>`; a missing setting refuses all."""
    if settings.admin_token is None or not settings.admin_token.get_secret_value():
        raise AdminDisabled("admin routes are disabled: LOTE_ADMIN_TOKEN is not set")
    scheme, _, token = (authorization or "").partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected):
        raise Unauthenticated("admin token missing or wrong", headers={"WWW-Authenticate": "Bearer"})
