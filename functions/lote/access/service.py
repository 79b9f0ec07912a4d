"""Client tokens: minted by a tenant's server (API key) for one end user, verified on every
request they carry, revocable; and the origin rules that keep API keys out of browsers."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from lote import ids, timeutil
from lote.access import store, tokens
from lote.access.schemas import ClientToken, ClientTokenRequest, RevokedToken
from lote.errors import Forbidden, NotFound, Unauthenticated, Unavailable
from lote.services import Services
from lote.settings import Settings
from lote.tenants import store as tenant_store
from lote.tenants.service import Caller


class SecretKeyInBrowser(Forbidden):
    """An API key sent from a web page of another site: it would be exposed to every visitor."""

    code = "secret_key_in_browser"


class OriginNotAllowed(Forbidden):
    """A client token used from a site its tenant has not allowed."""

    code = "origin_not_allowed"


class TokenRevoked(Unauthenticated):
    """A token its tenant revoked."""

    code = "token_revoked"


def own_origin(settings: Settings) -> str:
    """The API's own origin (scheme://host[:port]), where the operator view runs."""
    parts = urlsplit(settings.api_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_key_origin(settings: Settings, origin: str | None) -> None:
    """403 `secret_key_in_browser` for an API key sent by a page of another origin. Servers send
    no Origin header; the API's own pages (the operator view) may."""
    if origin is not None and origin.lower() != own_origin(settings):
        raise SecretKeyInBrowser(
            "an API key must never reach a browser: mint a client token on your server "
            "(POST /v1/client-tokens) and give the page that instead",
            {"origin": origin[:200]},
        )


def _keys(settings: Settings) -> dict[str, str]:
    return {kid: secret.get_secret_value() for kid, secret in settings.client_token_keys.items()}


def mint(services: Services, caller: Caller, req: ClientTokenRequest) -> ClientToken:
    """A token for `req.subject`, recorded (for revocation and its image cap) before it is signed."""
    caller.require_key()
    keys = _keys(services.settings)
    if not keys:
        raise Unavailable("client tokens are not configured (LOTE_CLIENT_TOKEN_KEYS)")
    now = services.clock()
    expires = now + dt.timedelta(seconds=req.ttl_s)
    token_id = ids.new_id("tok")
    scopes = sorted({str(scope) for scope in req.scopes})
    doc = store.document(caller.tenant_id, caller.key_id, req.subject, scopes, req.max_images, now, expires)
    store.ref(services.firestore.db, token_id).create(doc)
    claims = tokens.Claims(token_id, caller.tenant_id, req.subject, frozenset(scopes), expires)
    signed = tokens.sign(keys, claims, own_origin(services.settings), now)
    return ClientToken(id=token_id, token=signed, subject=req.subject, scopes=scopes,
                       expires_at=timeutil.iso(expires) or "", max_images=req.max_images)  # fmt: skip


def revoke(services: Services, caller: Caller, token_id: str) -> RevokedToken:
    """Revoke one of the tenant's tokens at once (every later request with it is a 401)."""
    caller.require_key()
    ref = store.ref(services.firestore.db, token_id) if ids.looks_like(token_id, "tok") else None
    snapshot = ref.get() if ref is not None else None
    doc = snapshot.to_dict() if snapshot is not None and snapshot.exists else None
    if ref is None or doc is None or doc.get("tenant_id") != caller.tenant_id:
        raise NotFound(f"no client token {token_id[:64]!r}", {"id": token_id[:64]})
    revoked_at = doc.get("revoked_at") or services.clock()
    if doc.get("revoked_at") is None:
        ref.update({"revoked_at": revoked_at})
    return RevokedToken(id=token_id, subject=doc["subject"], revoked_at=timeutil.iso(revoked_at) or "")


def verify(services: Services, token: str) -> tokens.Claims:
    """A client token's claims: signature, audience and expiry (401 otherwise); no read."""
    settings = services.settings
    return tokens.verify(_keys(settings), token, own_origin(settings), services.clock())


def caller_for(services: Services, claims: tokens.Claims, origin: str | None) -> tuple[Caller, int]:
    """The caller a verified token acts as, after its record (revoked?) and its tenant (limits,
    allowed origins); and the tenant's requests per minute, shared by all its tokens."""
    db = services.firestore.db
    record = store.ref(db, claims.token_id).get()
    doc = record.to_dict() if record.exists else None
    if doc is None or doc.get("tenant_id") != claims.tenant_id:
        raise tokens.TokenInvalid("this token is not known", headers=tokens.CHALLENGE)
    if doc.get("revoked_at") is not None:
        raise TokenRevoked("this token was revoked", headers=tokens.CHALLENGE)
    tenant = tenant_store.get_tenant(db, claims.tenant_id)
    if tenant is None:
        raise tokens.TokenInvalid("this token's tenant no longer exists", headers=tokens.CHALLENGE)
    allowed = list(tenant.get("allowed_origins") or [])
    if origin is not None and origin.lower() != own_origin(services.settings) and origin not in allowed:
        raise OriginNotAllowed(f"pages of {origin[:200]} may not use this API with this tenant's tokens",
                               {"origin": origin[:200], "allowed_origins": allowed})  # fmt: skip
    limits = tenant_store.limits_of(tenant)
    caller = Caller(
        tenant_id=claims.tenant_id, key_id=doc.get("minted_by", ""),
        max_in_flight=int(limits["max_in_flight"]),
        requests_per_minute=int(limits["subject_requests_per_minute"]),
        subject=claims.subject, scopes=claims.scopes, token_id=claims.token_id,
    )  # fmt: skip
    return caller, int(limits["requests_per_minute"])
