"""Reading requests (JSON, pydantic) and rendering answers; shared by every route."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import flask
from pydantic import BaseModel

from lote import ids
from lote.access import service as access
from lote.access import tokens
from lote.errors import InvalidRequest, UnsupportedMediaType
from lote.operations import OPERATIONS
from lote.services import Services
from lote.tenants import limits
from lote.tenants.service import Caller, bearer, caller_for
from lote.validation import has_lone_surrogate
from lote.validation import parse as parse  # re-exported: the routes' one import
from lote.web import current_services


def json_body(request: flask.Request) -> Any:
    """The request's JSON; 415 for another content type, 400 for malformed JSON."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json", {"content_type": mimetype or None})
    try:
        payload = json.loads(request.get_data(cache=True) or b"null")
    except ValueError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", {"field": "body"}) from None
    if has_lone_surrogate(payload):
        raise InvalidRequest(
            "body holds a string that is not valid Unicode (a lone surrogate)", {"field": "body"}
        )
    return payload


def respond(
    status: int, body: dict[str, Any] | BaseModel, headers: dict[str, str] | None = None
) -> flask.Response:
    """A JSON response."""
    data = body.model_dump(mode="json", exclude_none=True) if isinstance(body, BaseModel) else body
    response = flask.jsonify(data)
    response.status_code = status
    response.headers.update(headers or {})
    return response


MAX_WAIT_S = 60


def prefer_wait(request: flask.Request) -> int:
    """Seconds of `Prefer: wait=N` (RFC 7240; at most 60), else 0. A preference the server cannot
    read is ignored, as the RFC says, never an error."""
    for preference in request.headers.get("Prefer", "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait" and value.strip().isdigit():
            return min(int(value.strip()), MAX_WAIT_S)
    return 0


def applied(wait_s: int) -> dict[str, str]:
    """The Preference-Applied header for a wait that was honoured."""
    return {"Preference-Applied": f"wait={wait_s}"} if wait_s else {}


def respond_cached(
    view: BaseModel, etag: str, poll_after: int | None, extra: dict[str, str] | None = None
) -> flask.Response:
    """200 with an ETag (and a Retry-After polling hint while not done), or 304 if it matches.
    The ETag is weak: estimates in the body (`eta`, a batch's throughput) move without it."""
    headers = {"ETag": f'W/"{etag}"', "Cache-Control": "private, no-cache", **(extra or {})}
    if poll_after is not None:
        headers["Retry-After"] = str(poll_after)
    if flask.request.if_none_match.contains_weak(etag):
        response = flask.Response(status=304)
        response.headers.update(headers)
        return response
    return respond(200, view, headers)


_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rate-count")


# What a client token needs on each route, as the OpenAPI document states it (operations.py): the
# one place, so the contract and the check cannot drift apart.
_ACCESS = {(op.method.upper(), op.path.replace("{", "<").replace("}", ">")): op for op in OPERATIONS}


def authenticated() -> tuple[Services, Caller]:
    """The app's services and the caller: an API key (401 without a valid one; 403 when a page of
    another site sends it), or a client token (401 when invalid, expired or revoked; 403 from a
    site its tenant does not allow, or without the route's scope, or where only an API key may
    act); 429 over the rate.

    The window is counted while the credential is looked up (one round trip fewer); the RateLimit-*
    headers go on whatever response the route renders, errors included.
    """
    services = current_services()
    secret = bearer(flask.request.headers.get("Authorization"))  # 401 before any connection
    origin = flask.request.headers.get("Origin")
    if tokens.looks_like_token(secret):
        caller = _token_caller(services, secret, origin)
        rule = flask.request.url_rule.rule if flask.request.url_rule else ""
        op = _ACCESS.get((flask.request.method, rule))
        if op is None or op.key_only:  # a route the contract does not open to tokens stays closed
            return services, caller.require_key()
        for scope in op.scopes:
            caller.require(scope)
        return services, caller
    access.check_key_origin(services.settings, origin)
    hashed = ids.sha256_hex(secret)
    db = services.firestore.db
    rate_key, window = hashed[:32], limits.Window.at(services.clock())
    counting = _LOOKUPS.submit(limits.used, db, rate_key, window)
    caller = caller_for(services, hashed)
    state = limits.admit(db, rate_key, caller.requests_per_minute, window, counting.result())
    flask.g.rate_headers = state.headers()
    return services, caller


def _token_caller(services: Services, token: str, origin: str | None) -> Caller:
    """A client token's caller, limited per end user and, all its tokens together, per tenant."""
    claims = access.verify(services, token)  # no I/O: a forged token costs no read
    db, window = services.firestore.db, limits.Window.at(services.clock())
    subject_key = ids.sha256_hex(f"subject:{claims.tenant_id}:{claims.subject}")[:32]
    tenant_key = ids.sha256_hex(f"tokens:{claims.tenant_id}")[:32]
    counts = [_LOOKUPS.submit(limits.used, db, key, window) for key in (subject_key, tenant_key)]
    caller, tenant_limit = access.caller_for(services, claims, origin)
    limits.admit(db, tenant_key, tenant_limit, window, counts[1].result())
    state = limits.admit(db, subject_key, caller.requests_per_minute, window, counts[0].result())
    flask.g.rate_headers = state.headers()
    return caller


def add_rate_headers(response: flask.Response) -> flask.Response:
    """after_request hook: the caller's RateLimit-* headers, when the request was authenticated."""
    for name, value in flask.g.get("rate_headers", {}).items():
        response.headers.setdefault(name, value)
    return response
