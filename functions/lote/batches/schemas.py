"""Request and response models of batches and uploads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator

from lote.dispatch.schemas import WAITING_REASON
from lote.jobs.schemas import (
    AspectRatio,
    GenerationRequest,
    JobError,
    ModelId,
    OutputFormat,
    PresetName,
    Prompt,
    Regenerations,
    Status,
)
from lote.quality.schemas import Quality
from lote.validation import GS_IMAGE, ImageRef, Metadata, Params, RequestModel, WebhookUrl, whole

if TYPE_CHECKING:
    UploadSize = int
else:
    UploadSize = whole(1, 512 * 1024 * 1024)
BatchStatus = Literal["queued", "running", "completed", "canceled"]
MAX_INLINE_ITEMS = 10_000
MAX_MANIFEST_ITEMS = 100_000
CHUNK_SIZE = 500


class BatchItem(GenerationRequest):
    """One item: the generation fields plus the partner's own reference (unique in the batch).

    After the batch's `defaults` are merged in, an item needs exactly one of `prompt` or `preset`
    (an item's own prompt replaces a default preset and its params, and the other way round), and
    a preset's params and image count follow GET /v1/presets; this schema cannot say which fields
    the defaults provide, so it lists every field as optional.
    """

    model_config = ConfigDict(json_schema_extra=None)

    reference: str = Field(
        min_length=1, max_length=128, description="Your id for the item, e.g. a property code."
    )


class BatchDefaults(RequestModel):
    """Fields merged into every item (the item wins; params and metadata merge key by key)."""

    prompt: Prompt | None = None
    preset: PresetName | None = None
    params: Params = Field(default_factory=dict)
    images: list[ImageRef] | None = Field(None, max_length=4)
    model: ModelId | None = None
    aspect_ratio: AspectRatio | None = None
    output_format: OutputFormat | None = None
    metadata: Metadata = Field(default_factory=dict)
    verify: bool | None = None
    max_regenerations: Regenerations | None = None
    require_quality_pass: bool | None = None
    reuse: bool | None = None


ItemEvent = Literal["generation.succeeded", "generation.failed", "generation.canceled"]


def _one_source(schema: dict[str, Any]) -> None:
    """`items` or `items_url`, exactly one; item events need a receiver."""
    schema["oneOf"] = [
        {"required": ["items"], "properties": {"items": {"type": "array"}, "items_url": {"type": "null"}}},
        {
            "required": ["items_url"],
            "properties": {"items_url": {"type": "string"}, "items": {"type": "null"}},
        },
    ]
    schema["if"] = {"required": ["webhook_events"], "properties": {"webhook_events": {"minItems": 1}}}
    schema["then"] = {"required": ["webhook_url"], "properties": {"webhook_url": {"type": "string"}}}


class BatchRequest(RequestModel):
    """POST /v1/batches: inline `items` (≤ 10,000) or a JSONL manifest at `items_url` (≤ 100,000)."""

    model_config = ConfigDict(json_schema_extra=_one_source)

    items: Annotated[
        list[Any] | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_INLINE_ITEMS,
                        "items": {"$ref": "#/components/schemas/BatchItem"},
                    },
                    {"type": "null"},
                ],
                "description": "Items, each checked after merging `defaults`; every invalid one is reported.",
            }
        ),
    ] = Field(None, min_length=1, max_length=MAX_INLINE_ITEMS)  # items: one by one, in manifest.py
    items_url: str | None = Field(
        None,
        max_length=2048,
        pattern=GS_IMAGE,
        description="gs:// JSONL manifest under uploads/{your tenant}/ in the input bucket, one item a line.",
    )
    defaults: BatchDefaults = Field(default_factory=BatchDefaults)
    webhook_url: WebhookUrl | None = Field(
        None, description="Receives batch.completed / batch.canceled (and item events)."
    )
    webhook_events: list[ItemEvent] = Field(
        default_factory=list, max_length=3, description="Per-item events to send too (needs webhook_url)."
    )
    metadata: Metadata = Field(default_factory=dict)
    priority: Literal["express", "standard", "economy"] = Field(
        "standard",
        description="Scheduling tier: express drains first (+50% price), economy uses only spare capacity "
        "(−30%); prices in pricing.json.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> BatchRequest:
        if (self.items is None) == (self.items_url is None):
            raise ValueError("give exactly one of `items` or `items_url`")
        if self.webhook_events and self.webhook_url is None:
            raise ValueError("webhook_events needs a webhook_url")
        return self


class BatchLinks(BaseModel):
    """Related URLs of a batch."""

    self: str
    items: str
    results: str


class BatchAccepted(BaseModel):
    """202 answer to POST /v1/batches."""

    id: str
    status: BatchStatus
    total: int
    created_at: str
    links: BatchLinks


class Counts(BaseModel):
    """Items per state."""

    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class Fanout(BaseModel):
    """How far turning items into jobs and tasks has got."""

    chunks_done: int
    chunks_total: int
    complete: bool


class Batch(BaseModel):
    """GET /v1/batches/{id}."""

    id: str
    status: BatchStatus
    counts: Counts
    progress: float = Field(description="Percentage of items in a terminal state.")
    fanout: Fanout
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    throughput_per_min: float | None = Field(
        None,
        description="Items finished per minute over the last 5 minutes; once final, over the batch's "
        "whole life (created to finished).",
    )
    eta: str | None = Field(
        None,
        description="Estimated finish time at the batch's current share of the model (else its throughput).",
    )
    priority: Literal["express", "standard", "economy"] = "standard"
    waiting_on_model: bool = Field(
        False,
        description="True while the work waits on the model: see `waiting_reason`.",
    )
    waiting_reason: str | None = Field(
        None,
        description=WAITING_REASON,
    )
    metadata: dict[str, str] = Field(default_factory=dict)
    links: BatchLinks


class ItemOutput(BaseModel):
    """Where an item's image is: `url` redirects (with your API key) to a fresh signed URL."""

    url: str
    mime_type: str
    width: int
    height: int
    bytes: int
    sha256: str


class Item(BaseModel):
    """One item of a batch."""

    id: str
    index: int
    reference: str
    status: Status
    attempts: int
    output: ItemOutput | None = None
    error: JobError | None = None
    quality: Quality | None = Field(None, description="What verification concluded (verified items only).")
    reused_from: str | None = Field(
        None, description="The earlier item or generation whose image this item was delivered (see `reuse`)."
    )


class ItemsPage(BaseModel):
    """A page of items, in input order."""

    items: list[Item]
    next_page_token: str | None = None


class BatchSummary(BaseModel):
    """A batch in a listing."""

    id: str
    status: BatchStatus
    total: int
    created_at: str
    finished_at: str | None = None
    links: BatchLinks


class BatchPage(BaseModel):
    """A page of the tenant's batches, newest first."""

    batches: list[BatchSummary]
    next_page_token: str | None = None


class RetryRequest(RequestModel):
    """POST /v1/batches/{id}/retry: by default only failed items whose error is retryable."""

    error_codes: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        None, max_length=50, description="Only failed items with these error codes."
    )
    include_permanent: bool = Field(
        False, description="Also retry items whose failure was permanent (e.g. safety_blocked)."
    )


class RetryAnswer(BaseModel):
    """How many failed items were queued again, and how many are still being looked at."""

    retried: int = Field(description="Failed items this request queued again (charged again).")
    retrying: int = Field(
        0,
        description="A large batch's failed items (as its last recorded counts show) that are being "
        "retried in the background: those the request's filter wants are queued again as it goes, "
        "each page charged as it is queued; 0 when the request did it all.",
    )


class CancelAnswer(BaseModel):
    """What a cancel did, and what it still does."""

    status: BatchStatus
    canceled: int = Field(description="Queued items this request canceled.")
    running: int = Field(description="Items running now: they finish (and are charged if they succeed).")
    canceling: int = Field(
        0,
        description="Queued items still being canceled in the background (an estimate; 0 when every "
        "queued item is canceled). The batch's counts show them canceled as it goes.",
    )


class UploadRequest(RequestModel):
    """POST /v1/uploads."""

    content_type: Literal[
        "image/png", "image/jpeg", "image/webp", "application/x-ndjson", "application/jsonl"
    ]
    max_bytes: UploadSize = 10 * 1024 * 1024
    filename: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="The content's SHA-256 (hex): the object is then named by it, so the same content "
        "uploaded again has the same gs_uri, and a create resubmitted with its Idempotency-Key matches. "
        "Upload exactly that content.",
    )


class UploadAnswer(BaseModel):
    """A signed PUT URL: send the body with exactly `headers`, then use `gs_uri` in requests."""

    upload_url: str
    method: Literal["PUT"]
    headers: dict[str, str]
    gs_uri: str
    expires_at: str
