"""The OpenAPI 3.1 document: schemas generated from the pydantic models the API validates with, and
operations from the table in operations.py; what this deployment accepts (https only, its credit
packs) is filled in from its settings, so the document says exactly what this API does."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import lote
from lote.batches.schemas import BatchItem
from lote.jobs.schemas import ErrorResponse
from lote.operations import OPERATIONS, Operation
from lote.settings import Settings
from lote.validation import WEBHOOK_URL

_STATUS_TEXT = {
    302: "Found: Location is a fresh signed URL of the image",
    304: "Not modified since the ETag in If-None-Match",
    400: "Invalid request; details name the fields",
    401: "Missing, unknown or revoked credentials",
    402: "Not enough credits (details: required, available); nothing was written",
    403: "Not allowed: admin routes disabled (admin); a client token's scope, origin or image cap; an API "
    "key sent from another site's page",
    404: "No such resource for this tenant",
    409: "Conflict with the resource's state, or an Idempotency-Key reused with another body",
    413: "Body over the limit",
    415: "Body is not application/json",
    429: "rate_limited (see RateLimit-*), too_many_in_flight, overloaded (the instance is accepting all it "
    "can) or contention (a record is busy); Retry-After says when to come back",
    500: "Internal error (no details)",
    503: "A dependency is unavailable or busy; retry after Retry-After",
}
_INT = {"schema": {"type": "integer"}}
_HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {"description": "Requests allowed per minute for this key", **_INT},
    "RateLimit-Remaining": {"description": "Requests left in the current minute", **_INT},
    "RateLimit-Reset": {"description": "Seconds until the minute's window resets", **_INT},
    "Retry-After": {"description": "Seconds to wait before trying (or polling) again", **_INT},
    "Location": {"description": "The resource's URL", "schema": {"type": "string"}},
    "ETag": {"description": "Validator for If-None-Match", "schema": {"type": "string"}},
    "Cache-Control": {"description": "Caching policy", "schema": {"type": "string"}},
    "Preference-Applied": {
        "description": "`wait=N` when a Prefer: wait was honoured",
        "schema": {"type": "string"},
    },
    "Idempotency-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with this key",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_RATE = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _headers(names: tuple[str, ...], required: tuple[str, ...]) -> dict[str, Any]:
    return {name: {**_HEADERS[name], "required": name in required} for name in names}


def _responses(op: Operation) -> dict[str, Any]:
    rate = () if op.admin else _RATE
    ok_required = (*rate, *(h for h in op.headers if h in ("Location", "ETag", "Cache-Control")))
    ok: dict[str, Any] = {"description": op.summary, "headers": _headers((*rate, *op.headers), ok_required)}
    if op.response is not None:
        ok["content"] = {op.media: {"schema": _ref(op.response)}}
    elif op.media != "application/json":
        ok["content"] = {op.media: {"schema": {"type": "string"}}}
    for media in op.also_media:  # the same answer in another format (`format=csv`)
        ok.setdefault("content", {})[media] = {"schema": {"type": "string"}}
    if op.links:
        ok["links"] = op.links
    answers: dict[str, Any] = {op.ok: ok}
    if op.also_ok is not None:
        status, model, summary = op.also_ok
        answers[status] = {
            **ok,
            "description": summary,
            "content": {"application/json": {"schema": _ref(model)}},
        }
        answers[status].pop("links", None)
    auth_errors = (401, 403) if op.admin else (401, 403, 429)
    error = {"application/json": {"schema": _ref(ErrorResponse)}}
    for status in sorted({*op.errors, *auth_errors, 500, 503}):
        if status == 304:
            answers["304"] = {"description": _STATUS_TEXT[304],
                              "headers": _headers(("ETag", "Cache-Control", *rate), ("ETag",))}  # fmt: skip
            continue
        names = (*(rate if status not in (401, 413) else ()), "Retry-After")
        required = ("Retry-After",) if status == 429 else ()
        answers[str(status)] = {"description": _STATUS_TEXT[status], "content": error,
                                "headers": _headers(names, required)}  # fmt: skip
    return answers


def _security(op: Operation) -> list[dict[str, list[str]]]:
    """An API key always; a client token too unless only the key may act (`key_only`)."""
    return [{"apiKey": []}] if op.key_only else [{"apiKey": []}, {"clientToken": list(op.scopes)}]


def _operation(op: Operation) -> dict[str, Any]:
    found: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "security": [{"adminToken": []}] if op.admin else _security(op),
        "parameters": op.params,
        "responses": _responses(op),
    }
    if op.request is not None:
        found["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _ref(op.request)}},
        }
    return found


def _schemas() -> dict[str, Any]:
    requests = {op.request for op in OPERATIONS if op.request is not None} | {BatchItem}
    responses = {op.response for op in OPERATIONS if op.response is not None} | {ErrorResponse}
    pairs = [(m, "validation") for m in sorted(requests, key=lambda m: m.__name__)]
    pairs += [(m, "serialization") for m in sorted(responses - requests, key=lambda m: m.__name__)]
    _, schemas = models_json_schema(pairs, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    found: dict[str, Any] = schemas.get("$defs", {})
    return found


def document(settings: Settings) -> dict[str, Any]:
    """The whole document for this deployment."""
    return json.loads(_cached(settings.api_url, settings.is_local, tuple(sorted(settings.credit_packs))))


@lru_cache(maxsize=4)
def _cached(server: str, local: bool, packs: tuple[str, ...]) -> str:
    schemas = _schemas()
    schemas["CheckoutRequest"]["properties"]["pack"]["enum"] = list(packs)
    text = json.dumps(schemas)
    if not local:  # only a local stack takes plain http receivers
        text = text.replace(
            json.dumps(WEBHOOK_URL)[1:-1], json.dumps(WEBHOOK_URL.replace("https?", "https"))[1:-1]
        )
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    paths["/v1/openapi.json"] = {"get": {
        "operationId": "getOpenApi", "summary": "This document", "security": [],
        "responses": {"200": {"description": "The OpenAPI document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}  # fmt: skip
    return json.dumps({
        "openapi": "3.1.0",
        "info": {"title": "lote", "version": lote.__version__,
                 "description": "Image generation at partner scale: one image or batches of thousands."},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": json.loads(text),
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key (servers)"},
                "clientToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                "description": "A client token (POST /v1/client-tokens) for one end user"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "LOTE_ADMIN_TOKEN"},
            },
        },
    })  # fmt: skip
