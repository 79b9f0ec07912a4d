"""The API's resources as typed models, hand-written from `GET /v1/openapi.json` (a test holds every
field here to the document). Unknown fields are kept, so a newer server never breaks this client."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GenerationStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
BatchStatus = Literal["queued", "running", "completed", "canceled"]
Priority = Literal["express", "standard", "economy"]
FINAL_GENERATION = ("succeeded", "failed", "canceled")
FINAL_BATCH = ("completed", "canceled")


class Model(BaseModel):
    """A resource as the API answered it (extra fields kept)."""

    model_config = ConfigDict(extra="allow")


class Output(Model):
    """Where an image is: `url` is a signed URL (a generation) or the API's redirect (a batch item)."""

    url: str
    mime_type: str
    width: int
    height: int
    bytes: int
    sha256: str


class JobError(Model):
    """Why a generation failed; `retryable` says whether trying again may help."""

    code: str
    message: str
    retryable: bool


class Check(Model):
    """One rubric item of a verification."""

    name: str
    passed: bool
    finding: str = ""


class Quality(Model):
    """What verification concluded about an image."""

    passed: bool
    score: float | None = None
    checks: list[Check] = Field(default_factory=list)
    regenerations: int
    verifier_model: str
    unverified: str | None = None


class Links(Model):
    """A generation's related URLs."""

    self: str
    output: str | None = None


class Accepted(Model):
    """The answer to `POST /v1/generations` when it did not wait for the image."""

    id: str
    status: GenerationStatus
    created_at: str
    links: Links

    @property
    def done(self) -> bool:
        """Whether the generation reached a final status."""
        return self.status in FINAL_GENERATION


class Generation(Model):
    """One image: `GET /v1/generations/{id}`."""

    id: str
    status: GenerationStatus
    attempts: int
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    model: str
    model_ms: int | None = None
    cancel_requested: bool = False
    output: Output | None = None
    error: JobError | None = None
    prompt: str
    preset: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    images: list[str] = Field(default_factory=list)
    aspect_ratio: str | None = None
    output_format: str
    metadata: dict[str, str] = Field(default_factory=dict)
    webhook_url: str | None = None
    priority: str = "interactive"
    waiting_on_model: bool = False
    waiting_reason: str | None = None
    quality: Quality | None = None
    reused_from: str | None = None
    model_batch: dict[str, str] | None = None
    timeline: list[dict[str, Any]] | None = None
    eta: str | None = None
    links: Links

    @property
    def done(self) -> bool:
        """Whether the generation reached a final status."""
        return self.status in FINAL_GENERATION


class Counts(Model):
    """A batch's items per status."""

    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    canceled: int


class Fanout(Model):
    """How far the batch's items have been turned into jobs."""

    chunks_done: int
    chunks_total: int
    complete: bool


class BatchLinks(Model):
    """A batch's related URLs."""

    self: str
    items: str
    results: str


class Batch(Model):
    """`GET /v1/batches/{id}`."""

    id: str
    status: BatchStatus
    counts: Counts
    progress: float
    fanout: Fanout
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    throughput_per_min: float | None = None
    eta: str | None = None
    priority: Priority = "standard"
    waiting_on_model: bool = False
    waiting_reason: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    links: BatchLinks

    @property
    def done(self) -> bool:
        """Whether the batch reached a final status."""
        return self.status in FINAL_BATCH


class BatchAccepted(Model):
    """The answer to `POST /v1/batches`."""

    id: str
    status: BatchStatus
    total: int
    created_at: str
    links: BatchLinks


class BatchSummary(Model):
    """A batch in `GET /v1/batches`."""

    id: str
    status: BatchStatus
    total: int
    created_at: str
    finished_at: str | None = None
    links: BatchLinks


class ItemOutput(Output):
    """A batch item's image: `url` redirects (with your key) to a fresh signed URL."""


class Item(Model):
    """One item of a batch."""

    id: str
    index: int
    reference: str
    status: GenerationStatus
    attempts: int
    output: ItemOutput | None = None
    error: JobError | None = None
    quality: Quality | None = None
    reused_from: str | None = None


class PresetParam(Model):
    """A preset's parameter."""

    name: str
    choices: list[str] | None = None
    default: str | None = None
    required: bool
    auto_from: str | None = None


class Rubric(Model):
    """What a preset's verification checks."""

    checks: list[str]
    threshold: float
    max_regenerations: int


class Preset(Model):
    """A named prompt template with its steps and price."""

    name: str
    description: str
    min_images: int
    price: int
    params: list[PresetParam]
    steps: list[str] = Field(default_factory=list)
    step_prices: dict[str, int] = Field(default_factory=dict)
    rubric: Rubric | None = None


class Upload(Model):
    """A signed PUT URL for an input image or a batch manifest."""

    upload_url: str
    method: str
    headers: dict[str, str]
    gs_uri: str
    expires_at: str


class UsageRow(Model):
    """One group's figures in one period, or over the whole range."""

    group: str
    images: int
    succeeded: int
    failed: int
    canceled: int
    reused: int
    charged: int
    refunded: int
    p50_ms: int | None = None
    p95_ms: int | None = None


class UsagePeriod(Model):
    """A UTC hour or day and its rows."""

    start: str
    rows: list[UsageRow]


class Usage(Model):
    """What finished in a range: by period and group, totals, failures by code."""

    from_: str = Field(alias="from")
    to: str
    granularity: str
    group_by: str | None = None
    periods: list[UsagePeriod]
    totals: list[UsageRow]
    failures_by_code: dict[str, int]
    documents_read: int


class SpendControls(Model):
    """The account's spend caps and low-balance threshold, and what was charged against them."""

    daily_cap: int | None = None
    monthly_cap: int | None = None
    low_balance_threshold: int | None = None
    webhook_url: str | None = None
    charged_today: int
    charged_this_month: int
    low_balance: bool
    day_resets_at: str
    month_resets_at: str
