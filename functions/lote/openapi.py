"""The OpenAPI 3.1 document, generated from the pydantic models and the route table below."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import lote
from lote.batches.schemas import (
    Batch,
    BatchAccepted,
    BatchPage,
    BatchRequest,
    CancelAnswer,
    ItemsPage,
    RetryAnswer,
    RetryRequest,
    UploadAnswer,
    UploadRequest,
)  # fmt: skip
from lote.billing.schemas import CheckoutAnswer, CheckoutRequest, PackList
from lote.jobs.schemas import Accepted, ErrorResponse, Generation, GenerationRequest
from lote.tenants.schemas import (
    Account,
    ApiKey,
    CreditGrant,
    KeyCreate,
    LedgerEntry,
    LedgerPage,
    NewApiKey,
    PlanUpdate,
    Tenant,
    TenantCreate,
)  # fmt: skip
from lote.webhooks.schemas import Delivery, DeliveryPage, WebhookSecret

_ERRORS = {
    "400": "Invalid request; details name the fields",
    "401": "Missing, unknown or revoked API key",
    "402": "Not enough credits (details: required, available)",
    "404": "No such resource for this tenant",
    "405": "Method not allowed",
    "409": "Conflict with the resource's state (or Idempotency-Key reused with another body)",
    "413": "Body over the limit",
    "415": "Body is not application/json",
    "429": "rate_limited (RateLimit-* headers) or too_many_in_flight; see Retry-After",
    "500": "Internal error (no details)",
    "503": "A dependency is unavailable; retry",
}
_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TENANT = {"name": "tenant_id", "in": "path", "required": True, "schema": {"type": "string"}}
_BATCH = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
_DELIVERY = {"name": "delivery_id", "in": "path", "required": True, "schema": {"type": "string"}}
_PAGE = [
    {"name": "status", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "page_token", "in": "query", "required": False, "schema": {"type": "string"}},
]
_PAGE_SIZE = {
    "name": "page_size",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "maximum": 1000},
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Same key and body within 24 h returns the first answer and creates nothing.",
}

# (method, path, summary, request model, success status, response model, parameters)
ROUTES: list[
    tuple[str, str, str, type[BaseModel] | None, str, type[BaseModel] | None, list[dict[str, Any]]]
] = [
    ("post", "/v1/generations", "Submit one generation", GenerationRequest, "202", Accepted, [_IDEMPOTENCY]),
    (
        "get",
        "/v1/generations/{job_id}",
        "Read a generation (ETag, Retry-After)",
        None,
        "200",
        Generation,
        [_ID],
    ),
    ("get", "/v1/generations/{job_id}/output", "Redirect to the output image", None, "302", None, [_ID]),
    ("post", "/v1/generations/{job_id}/cancel", "Cancel a generation", None, "200", Generation, [_ID]),
    ("post", "/v1/batches", "Submit a batch", BatchRequest, "202", BatchAccepted, [_IDEMPOTENCY]),
    ("get", "/v1/batches", "List batches (newest first)", None, "200", BatchPage, _PAGE),
    ("get", "/v1/batches/{batch_id}", "Read a batch with live counts", None, "200", Batch, [_BATCH]),
    (
        "get",
        "/v1/batches/{batch_id}/items",
        "List a batch's items",
        None,
        "200",
        ItemsPage,
        [_BATCH, *_PAGE, _PAGE_SIZE],
    ),
    (
        "get",
        "/v1/batches/{batch_id}/results.jsonl",
        "Export every item as JSON lines",
        None,
        "200",
        None,
        [_BATCH],
    ),
    (
        "post",
        "/v1/batches/{batch_id}/retry",
        "Retry failed items",
        RetryRequest,
        "200",
        RetryAnswer,
        [_BATCH],
    ),
    ("post", "/v1/batches/{batch_id}/cancel", "Cancel a batch", None, "200", CancelAnswer, [_BATCH]),
    ("post", "/v1/uploads", "Get a signed upload URL", UploadRequest, "201", UploadAnswer, []),
    ("get", "/v1/account", "Read your account", None, "200", Account, []),
    ("get", "/v1/account/ledger", "List your ledger (newest first)", None, "200", LedgerPage, _PAGE[1:]),
    ("get", "/v1/webhooks/deliveries", "List webhook deliveries (newest first)", None, "200", DeliveryPage,
     _PAGE),
    ("get", "/v1/webhooks/deliveries/{delivery_id}", "Read a delivery and its event", None, "200", Delivery,
     [_DELIVERY]),
    ("post", "/v1/webhooks/deliveries/{delivery_id}/redeliver", "Redeliver an event", None, "202", Delivery,
     [_DELIVERY]),
    ("get", "/v1/account/webhook-secret", "Read your webhook signing secret", None, "200", WebhookSecret, []),
    ("post", "/v1/account/webhook-secret/rotate", "Rotate the webhook signing secret", None, "200",
     WebhookSecret, []),
    ("get", "/v1/billing/packs", "List credit packs", None, "200", PackList, []),
    ("post", "/v1/billing/checkout", "Buy a credit pack (Stripe Checkout)", CheckoutRequest, "201",
     CheckoutAnswer, [_IDEMPOTENCY]),
    ("post", "/v1/admin/tenants", "Admin: create a tenant", TenantCreate, "201", None, []),
    ("patch", "/v1/admin/tenants/{tenant_id}", "Admin: change plan or limits", PlanUpdate, "200", Tenant,
     [_TENANT]),
    ("get", "/v1/admin/tenants/{tenant_id}", "Admin: show a tenant", None, "200", Tenant, [_TENANT]),
    ("post", "/v1/admin/tenants/{tenant_id}/credits", "Admin: grant credits", CreditGrant, "201", LedgerEntry,
     [_TENANT, _IDEMPOTENCY]),
    ("post", "/v1/admin/tenants/{tenant_id}/keys", "Admin: create a key", KeyCreate, "201", NewApiKey,
     [_TENANT]),
    ("get", "/v1/admin/tenants/{tenant_id}/keys", "Admin: list keys", None, "200", None, [_TENANT]),
    ("post", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke", "Admin: revoke a key", None, "200", ApiKey,
     [_TENANT, {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}]),
]  # fmt: skip


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


@lru_cache(maxsize=4)
def document(server: str) -> dict[str, Any]:
    """The whole document for a server URL."""
    models = {m for route in ROUTES for m in (route[3], route[5]) if m is not None} | {ErrorResponse}
    _, schemas = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    error = {"content": {"application/json": {"schema": _ref(ErrorResponse)}}}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, request, status, response, parameters in ROUTES:
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": summary.lower().split(" (")[0].replace(" ", "_"),
            "security": [{"apiKey": []}],
            "parameters": parameters,
            "responses": {
                status: {"description": summary}
                | ({"content": {"application/json": {"schema": _ref(response)}}} if response else {}),
                **{code: {"description": text, **error} for code, text in _ERRORS.items()},
            },
        }
        if request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(request)}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "lote", "version": lote.__version__, "description": "Image generation at scale."},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
