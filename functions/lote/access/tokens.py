"""Signing and verifying client tokens: JWTs (HS256) whose `kid` names the key, so keys rotate.
Pure: no I/O; the caller passes the keys, the audience and the time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jwt

from lote.errors import Unauthenticated

ALGORITHM = "HS256"
REQUIRED = ["iss", "aud", "sub", "jti", "iat", "exp", "ten", "scope"]
CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class TokenInvalid(Unauthenticated):
    """Not a token we signed: malformed, forged, or signed with a key we no longer hold."""

    code = "token_invalid"


class TokenExpired(Unauthenticated):
    """A token past its `exp`."""

    code = "token_expired"


class TokenWrongAudience(Unauthenticated):
    """A token minted for another lote deployment."""

    code = "token_wrong_audience"


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    token_id: str
    tenant_id: str
    subject: str
    scopes: frozenset[str]
    expires_at: dt.datetime


def looks_like_token(secret: str) -> bool:
    """Whether a bearer credential is a JWT (API keys never contain dots)."""
    return secret.startswith("eyJ") and secret.count(".") == 2


def sign(keys: dict[str, str], claims: Claims, audience: str, now: dt.datetime) -> str:
    """The signed token; the first key signs (rotation: put a new key first, keep the old ones
    after it until every token they signed has expired)."""
    kid, key = next(iter(keys.items()))
    payload = {
        "iss": audience, "aud": audience, "sub": claims.subject, "jti": claims.token_id,
        "ten": claims.tenant_id, "scope": " ".join(sorted(claims.scopes)),
        "iat": int(now.timestamp()), "exp": int(claims.expires_at.timestamp()),
    }  # fmt: skip
    return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": kid})


def verify(keys: dict[str, str], token: str, audience: str, now: dt.datetime) -> Claims:
    """The token's claims; 401 `token_invalid`, `token_expired` or `token_wrong_audience`."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise TokenInvalid("the token is malformed", headers=CHALLENGE) from None
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenInvalid(
            "the token was not signed by a key this API holds", {"kid": kid}, headers=CHALLENGE
        )
    try:
        # Time is checked below against `now` (the services' clock), not PyJWT's own.
        options: Any = {"require": REQUIRED, "verify_exp": False, "verify_iat": False}
        payload = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=audience, issuer=audience, options=options
        )
    except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
        raise TokenWrongAudience(f"the token is not for {audience}", headers=CHALLENGE) from None
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"the token is invalid: {exc}", headers=CHALLENGE) from None
    expires = dt.datetime.fromtimestamp(int(payload["exp"]), dt.UTC)
    if expires <= now:
        expired_at = expires.isoformat().replace("+00:00", "Z")
        raise TokenExpired("the token has expired; ask your server for a new one", {"expired_at": expired_at},
                           headers=CHALLENGE)  # fmt: skip
    return Claims(str(payload["jti"]), str(payload["ten"]), str(payload["sub"]),
                  frozenset(str(payload["scope"]).split()), expires)  # fmt: skip
