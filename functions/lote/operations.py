"""The HTTP operations as the OpenAPI document states them: parameters, statuses, headers, links.

Each operation lists only the statuses it can answer; openapi.py turns the table into the document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from lote.access.schemas import ClientToken, ClientTokenRequest, RevokedToken
from lote.batches.schemas import (
    MAX_MANIFEST_ITEMS,
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
from lote.billing.schemas import CheckoutAnswer, CheckoutRequest, PackList, SpendControls, SpendControlsUpdate
from lote.dispatch.schemas import Scheduler
from lote.jobs.schemas import Accepted, Generation, GenerationRequest, PresetList
from lote.statuses import BatchStatus, DeliveryStatus, JobStatus
from lote.tenants.schemas import (
    Account,
    ApiKey,
    CreatedTenant,
    CreditGrant,
    Economics,
    KeyCreate,
    KeyList,
    LedgerEntry,
    LedgerPage,
    NewApiKey,
    PlanUpdate,
    Tenant,
    TenantCreate,
)  # fmt: skip
from lote.usage.schemas import Usage
from lote.webhooks.schemas import Delivery, DeliveryPage, WebhookSecret


def _id(name: str, prefix: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "pattern": f"^{prefix}_[0-9a-hjkmnp-tv-z]{{8,64}}$"}}  # fmt: skip


JOB, BATCH, DELIVERY, TENANT = (
    _id("job_id", "gen"),
    _id("batch_id", "bat"),
    _id("delivery_id", "msg"),
    _id("tenant_id", "ten"),
)
TOKEN_ID = _id("token_id", "tok")
KEY = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
TOKEN = {"name": "page_token", "in": "query", "required": False,
         "schema": {"type": "string", "minLength": 1, "maxLength": 200},
         "description": "`next_page_token` of the previous page; other values are refused."}  # fmt: skip
FROM_INDEX = {"name": "from_index", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 0, "maximum": MAX_MANIFEST_ITEMS, "default": 0},
              "description": "Start at the item with this `index` (to resume a stream)."}  # fmt: skip
PAGE_SIZE = {"name": "page_size", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}  # fmt: skip


def status_param(values: tuple[str, ...]) -> dict[str, Any]:
    """The `status` filter of a listing."""
    return {
        "name": "status",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": list(values)},
    }


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "Same key and body within 24 h returns the first answer and creates nothing.",
}
PREFER = {"name": "Prefer", "in": "header", "required": False,
          "schema": {"type": "string"},
          "description": "`wait=N` (N ≤ 60): hold the answer until the job changes (GET: from the "
          "If-None-Match given, else from now; POST: until it is final) or N seconds pass. Other "
          "preferences are ignored."}  # fmt: skip
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
                 "description": "An ETag from an earlier answer: 304 while nothing changed."}  # fmt: skip


@dataclass(frozen=True)
class Operation:
    """One method on one path."""

    method: str
    path: str
    operation_id: str
    summary: str
    ok: str
    response: type[BaseModel] | None = None
    request: type[BaseModel] | None = None
    params: list[dict[str, Any]] = field(default_factory=list)
    errors: tuple[int, ...] = ()
    admin: bool = False
    headers: tuple[str, ...] = ()  # success headers beyond the rate-limit ones
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    body_required: bool = True  # False: an empty body means the request model's defaults
    media: str = "application/json"
    scopes: tuple[str, ...] = ()  # what a client token needs here (none: any token)
    also_ok: tuple[str, type[BaseModel], str] | None = None  # another success: status, model, summary
    key_only: bool = False  # only an API key may act here, never a client token
    also_media: tuple[str, ...] = ()  # other formats of the success answer


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


USAGE_PARAMS = [
    _query(
        "from",
        {"type": "string", "maxLength": 40},
        "Start (inclusive): RFC 3339 time or date; default 30 days (by hour: 1 day) before `to`.",
    ),
    _query("to", {"type": "string", "maxLength": 40}, "End (exclusive): RFC 3339 time or date; default now."),
    _query("granularity", {"type": "string", "enum": ["day", "hour"]}, "Period length (default day)."),
    _query("group_by", {"type": "string", "enum": ["preset", "tier", "model", "status"]}, "Rows per group."),
    _query("format", {"type": "string", "enum": ["json", "csv"]}, "csv: one row per period and group."),
]


def _link(operation_id: str, **params: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": params}


JOB_LINKS = {
    "GetGeneration": _link("getGeneration", job_id="$response.body#/id"),
    "CancelGeneration": _link("cancelGeneration", job_id="$response.body#/id"),
    "GetGenerationOutput": _link("getGenerationOutput", job_id="$response.body#/id"),
}
BATCH_LINKS = {
    "GetBatch": _link("getBatch", batch_id="$response.body#/id"),
    "ListBatchItems": _link("listBatchItems", batch_id="$response.body#/id"),
    "GetBatchResults": _link("getBatchResults", batch_id="$response.body#/id"),
    "RetryBatch": _link("retryBatch", batch_id="$response.body#/id"),
    "CancelBatch": _link("cancelBatch", batch_id="$response.body#/id"),
}
TENANT_LINKS = {
    name: _link(operation, tenant_id="$response.body#/tenant_id")
    for name, operation in (("GetTenant", "adminGetTenant"), ("SetPlan", "adminSetPlan"),
                            ("GrantCredits", "adminGrantCredits"), ("CreateKey", "adminCreateKey"),
                            ("ListKeys", "adminListKeys"))
}  # fmt: skip
KEY_LINKS = {
    "RevokeKey": _link("adminRevokeKey", tenant_id="$request.path.tenant_id", key_id="$response.body#/key_id")
}
BODY = (400, 413, 415)  # every operation that reads a JSON body
CACHED = ("ETag", "Cache-Control", "Retry-After", "Preference-Applied")
REPLAYABLE = ("Location", "Idempotency-Replayed", "Preference-Applied")
BATCH_STATUSES = tuple(s.value for s in BatchStatus)
DELIVERY_STATUSES = tuple(s.value for s in DeliveryStatus)
ITEM_STATUSES = tuple(s.value for s in JobStatus)

OPERATIONS: list[Operation] = [
    Operation("post", "/v1/generations", "createGeneration", "Submit one generation", "202", Accepted,
              GenerationRequest, [IDEMPOTENCY, PREFER], (*BODY, 402, 409), headers=REPLAYABLE,
              links=JOB_LINKS, scopes=("generations:create",),
              also_ok=("200", Generation, "Final within the Prefer: wait")),
    Operation("get", "/v1/generations/{job_id}", "getGeneration", "Read a generation", "200", Generation,
              params=[JOB, IF_NONE_MATCH, PREFER], errors=(304, 404), headers=CACHED,
              scopes=("generations:read",)),
    Operation("get", "/v1/generations/{job_id}/output", "getGenerationOutput", "Redirect to the image", "302",
              params=[JOB], errors=(404, 409), headers=("Location",), scopes=("generations:read",)),
    Operation("post", "/v1/generations/{job_id}/cancel", "cancelGeneration", "Cancel a generation", "200",
              Generation, params=[JOB], errors=(404, 409), scopes=("generations:create",)),
    Operation("get", "/v1/presets", "listPresets", "List presets and their parameters", "200", PresetList),
    Operation("post", "/v1/batches", "createBatch", "Submit a batch", "202", BatchAccepted, BatchRequest,
              [IDEMPOTENCY], (*BODY, 402, 409), headers=REPLAYABLE, links=BATCH_LINKS,
              scopes=("batches:create",)),
    Operation("get", "/v1/batches", "listBatches", "List batches (newest first)", "200", BatchPage,
              params=[status_param(BATCH_STATUSES), TOKEN], errors=(400,), scopes=("batches:read",)),
    Operation("get", "/v1/batches/{batch_id}", "getBatch", "Read a batch with live counts", "200", Batch,
              params=[BATCH, IF_NONE_MATCH], errors=(304, 404), headers=CACHED, scopes=("batches:read",)),
    Operation("get", "/v1/batches/{batch_id}/items", "listBatchItems", "List a batch's items", "200",
              ItemsPage, params=[BATCH, status_param(ITEM_STATUSES), TOKEN, PAGE_SIZE], errors=(400, 404),
              scopes=("batches:read",)),
    Operation("get", "/v1/batches/{batch_id}/results.jsonl", "getBatchResults", "Every item as JSON lines",
              "200", params=[BATCH, FROM_INDEX], errors=(400, 404), media="application/jsonl",
              scopes=("batches:read",)),
    Operation("post", "/v1/batches/{batch_id}/retry", "retryBatch", "Retry failed items", "200", RetryAnswer,
              RetryRequest, [BATCH], (*BODY, 402, 404, 409), body_required=False, scopes=("batches:write",)),
    Operation("post", "/v1/batches/{batch_id}/cancel", "cancelBatch", "Cancel a batch", "200", CancelAnswer,
              params=[BATCH], errors=(404, 409), scopes=("batches:write",)),
    Operation("post", "/v1/uploads", "createUpload", "Get a signed upload URL", "201", UploadAnswer,
              UploadRequest, errors=BODY, scopes=("uploads:create",)),
    Operation("get", "/v1/account", "getAccount", "Read your account", "200", Account,
              scopes=("account:read",)),
    Operation("get", "/v1/account/ledger", "listLedger", "List your ledger (newest first)", "200",
              LedgerPage, params=[TOKEN], errors=(400,), scopes=("account:read",)),
    Operation("get", "/v1/account/usage", "getUsage", "Your usage by period and group (JSON or CSV)", "200",
              Usage, params=USAGE_PARAMS, errors=(400,), scopes=("account:read",), also_media=("text/csv",)),
    Operation("get", "/v1/account/spend-controls", "getSpendControls",
              "Read your spend caps and low-balance threshold", "200", SpendControls, key_only=True),
    Operation("patch", "/v1/account/spend-controls", "setSpendControls",
              "Set your spend caps and low-balance threshold", "200", SpendControls, SpendControlsUpdate,
              errors=BODY, key_only=True),
    Operation("get", "/v1/webhooks/deliveries", "listDeliveries", "List webhook deliveries", "200",
              DeliveryPage, params=[status_param(DELIVERY_STATUSES), TOKEN], errors=(400,),
              scopes=("webhooks:read",)),
    Operation("get", "/v1/webhooks/deliveries/{delivery_id}", "getDelivery", "Read a delivery and its event",
              "200", Delivery, params=[DELIVERY], errors=(404,), scopes=("webhooks:read",)),
    Operation("post", "/v1/webhooks/deliveries/{delivery_id}/redeliver", "redeliverDelivery",
              "Redeliver an event", "202", Delivery, params=[DELIVERY], errors=(404, 409),
              scopes=("webhooks:write",)),
    Operation("get", "/v1/account/webhook-secret", "getWebhookSecret", "Read your webhook signing secret",
              "200", WebhookSecret, headers=("Cache-Control",), key_only=True),
    Operation("post", "/v1/account/webhook-secret/rotate", "rotateWebhookSecret", "Rotate the signing secret",
              "200", WebhookSecret, headers=("Cache-Control",), key_only=True),
    Operation("get", "/v1/billing/packs", "listPacks", "List credit packs", "200", PackList),
    Operation("post", "/v1/billing/checkout", "createCheckout", "Buy a credit pack (Stripe Checkout)", "201",
              CheckoutAnswer, CheckoutRequest, [IDEMPOTENCY], (*BODY, 404), key_only=True),
    Operation("post", "/v1/client-tokens", "createClientToken", "Mint a client token for an end user", "201",
              ClientToken, ClientTokenRequest, errors=(*BODY, 503), headers=("Cache-Control",),
              key_only=True),
    Operation("post", "/v1/client-tokens/{token_id}/revoke", "revokeClientToken", "Revoke a client token",
              "200", RevokedToken, params=[TOKEN_ID], errors=(404,), key_only=True),
    Operation("get", "/v1/admin/scheduler", "adminScheduler", "Admin: pace, breaker and backlog", "200",
              Scheduler, errors=(403,), admin=True),
    Operation("post", "/v1/admin/tenants", "adminCreateTenant", "Admin: create a tenant", "201",
              CreatedTenant, TenantCreate, errors=(*BODY, 403), admin=True, links=TENANT_LINKS),
    Operation("patch", "/v1/admin/tenants/{tenant_id}", "adminSetPlan", "Admin: change plan or limits",
              "200", Tenant, PlanUpdate, [TENANT], (*BODY, 403, 404), admin=True),
    Operation("get", "/v1/admin/tenants/{tenant_id}", "adminGetTenant", "Admin: show a tenant", "200",
              Tenant, params=[TENANT], errors=(403, 404), admin=True),
    Operation("get", "/v1/admin/tenants/{tenant_id}/economics", "adminTenantEconomics",
              "Admin: credits sold and charged against model spend", "200", Economics,
              params=[TENANT, *USAGE_PARAMS[:2]], errors=(400, 403, 404), admin=True),
    Operation("post", "/v1/admin/tenants/{tenant_id}/credits", "adminGrantCredits", "Admin: grant credits",
              "201", LedgerEntry, CreditGrant, [TENANT, IDEMPOTENCY], (*BODY, 403, 404), admin=True),
    Operation("post", "/v1/admin/tenants/{tenant_id}/keys", "adminCreateKey", "Admin: create a key", "201",
              NewApiKey, KeyCreate, [TENANT], (*BODY, 403, 404), admin=True, links=KEY_LINKS),
    Operation("get", "/v1/admin/tenants/{tenant_id}/keys", "adminListKeys", "Admin: list keys", "200",
              KeyList, params=[TENANT], errors=(403, 404), admin=True),
    Operation("post", "/v1/admin/tenants/{tenant_id}/keys/{key_id}/revoke", "adminRevokeKey",
              "Admin: revoke a key", "200", ApiKey, params=[TENANT, KEY], errors=(403, 404), admin=True),
]  # fmt: skip
