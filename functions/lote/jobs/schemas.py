"""Request and response models of generations; OpenAPI is generated from these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from lote.billing.pricing import models as priced_models
from lote.dispatch.schemas import WAITING_REASON
from lote.quality import plan as quality_plan
from lote.quality import presets
from lote.quality.presets import names as preset_names
from lote.quality.schemas import Quality
from lote.validation import (
    MAX_PARAM_VALUE,
    NOT_BLANK,
    ImageRef,
    Metadata,
    Params,
    RequestModel,
    WebhookUrl,
    whole,
)

AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
OutputFormat = Literal["png", "jpeg", "webp"]
Status = Literal["queued", "running", "succeeded", "failed", "canceled"]
MAX_IMAGES = 4
# The models lote has a price for, and the presets it knows: anything else is refused up front.
if TYPE_CHECKING:
    ModelId = str
    PresetName = str
    Regenerations = int
else:  # enums in the OpenAPI document, generated from pricing.json and presets.json
    ModelId = Literal[priced_models()]
    PresetName = Literal[preset_names()]
    Regenerations = whole(0, 5)


def _one_of_prompt_or_preset(schema: dict[str, Any]) -> None:
    """The cross-field rules as JSON Schema, generated from presets.json: a prompt (no preset, no
    params), or one preset with its own parameters and choices and enough input images."""
    variants: list[dict[str, Any]] = [
        {
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string"},
                "preset": {"type": "null"},
                "params": {"maxProperties": 0},
            },
            "allOf": quality_plan.schema_rules(None),
        }
    ]
    for name, spec in presets.catalogue().items():
        params = {
            param: {"type": "string", "enum": rule["choices"]}
            if "choices" in rule
            else {"type": "string", "minLength": 1, "maxLength": MAX_PARAM_VALUE}
            for param, rule in spec["params"].items()
        }
        needed = sorted(param for param, rule in spec["params"].items() if rule.get("default") is None)
        variants.append({
            "required": ["preset", *(["images"] if spec.get("min_images") else [])],
            "properties": {
                "preset": {"const": name},
                "prompt": {"type": "null"},
                "params": {"type": "object", "properties": params, "additionalProperties": False,
                           **({"required": needed} if needed else {})},
                "images": {"type": "array", "minItems": int(spec.get("min_images", 0))},
            },
            "allOf": quality_plan.schema_rules(name),
        })  # fmt: skip
    schema["oneOf"] = variants


Prompt = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=NOT_BLANK)]


class GenerationRequest(RequestModel):
    """POST /v1/generations: a prompt, or a preset with params; up to four input images."""

    model_config = ConfigDict(json_schema_extra=_one_of_prompt_or_preset)

    prompt: Prompt | None = Field(None, description="What to generate (not only whitespace).")
    preset: PresetName | None = Field(None, description="A named prompt template (GET /v1/presets).")
    params: Params = Field(default_factory=dict)
    images: list[ImageRef] = Field(default_factory=list, max_length=MAX_IMAGES, description="Input images.")
    model: ModelId | None = Field(None, description="Model id; the default model when absent.")
    aspect_ratio: AspectRatio | None = Field(
        None, description="Output aspect ratio; when absent the model keeps the first input image's."
    )
    output_format: OutputFormat = "png"
    metadata: Metadata = Field(default_factory=dict)
    webhook_url: WebhookUrl | None = Field(
        None, description="Where events are POSTed: https and a public address (http and loopback locally)."
    )
    verify: bool | None = Field(
        None,
        description="Verify the image against a rubric and regenerate it when it fails (default: the "
        "preset's steps, GET /v1/presets; a plain prompt is verified only when asked).",
    )
    max_regenerations: Regenerations | None = Field(
        None,
        description="Regenerations after failed verifications: may lower the preset's default.",
    )
    require_quality_pass: bool = Field(
        False,
        description="Fail the generation (`quality_rejected`, refunded) rather than deliver an image that "
        "never passed verification.",
    )
    reuse: bool = Field(
        True,
        description="Deliver the image made for an identical earlier request of yours (same prompt or "
        "preset and params, same input images by content, same model, aspect ratio, format and "
        "verification) instead of generating it again, at pricing.json's `reuse_percent` of the price; "
        "false forces a fresh image.",
    )

    @model_validator(mode="after")
    def _prompt_or_preset(self) -> GenerationRequest:
        if (self.prompt is None) == (self.preset is None):
            raise ValueError("give exactly one of `prompt` or `preset`")
        if self.params and self.preset is None:
            raise ValueError("`params` go with a `preset`")
        return self


class Links(BaseModel):
    """Related URLs."""

    self: str
    output: str | None = None


class Output(BaseModel):
    """The generated image."""

    url: str = Field(description="Signed URL; expires (see the settings).")
    mime_type: str
    width: int
    height: int
    bytes: int
    sha256: str


class JobError(BaseModel):
    """Why a job failed."""

    code: str
    message: str
    retryable: bool


class Accepted(BaseModel):
    """202 answer to POST /v1/generations."""

    id: str
    status: Status
    created_at: str
    links: Links


class TimelineEvent(BaseModel):
    """One moment of an image's life (`?include=timeline`)."""

    at: str
    event: Literal["accepted", "released", "attempt_started", "attempt_ended", "finished", "webhook"]
    attempt: int | None = None
    detail: dict[str, object] = Field(
        default_factory=dict,
        description="attempt_ended: end, code, model_ms; finished: status; webhook: type, status_code, "
        "latency_ms, error.",
    )


class ModelBatchStatus(BaseModel):
    """The model batch job (Gemini's batch mode) a running economy item is a request of."""

    id: str
    state: str = Field(
        description="gathered or submitted (on lote's side), then Gemini's: JOB_STATE_PENDING, "
        "JOB_STATE_RUNNING, …"
    )


class Generation(BaseModel):
    """A generation as GET /v1/generations/{id} returns it."""

    id: str
    status: Status
    attempts: int
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    model: str
    model_ms: int | None = None
    cancel_requested: bool = False
    output: Output | None = None
    error: JobError | None = None
    prompt: str = Field(description="The prompt sent to the model (a preset's, filled in).")
    preset: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    images: list[str] = Field(
        default_factory=list, description="The inputs as stored: data: URIs are kept as gs:// objects."
    )
    aspect_ratio: AspectRatio | None = None
    output_format: OutputFormat
    metadata: dict[str, str] = Field(default_factory=dict)
    webhook_url: str | None = None
    priority: Literal["interactive", "express", "standard", "economy"] = Field(
        "interactive",
        description="Scheduling tier: single generations are interactive; items take their batch's.",
    )
    waiting_on_model: bool = Field(
        False,
        description="True while the work waits on the model: see `waiting_reason`.",
    )
    waiting_reason: str | None = Field(
        None,
        description=WAITING_REASON,
    )
    quality: Quality | None = Field(
        None, description="What verification concluded (verified generations only: see `verify`)."
    )
    reused_from: str | None = Field(
        None,
        description="The earlier generation whose image this one was delivered (an identical request: "
        "see `reuse`); no model was called.",
    )
    model_batch: ModelBatchStatus | None = Field(
        None, description="While a batch item runs in Gemini's batch mode: its model batch job."
    )
    timeline: list[TimelineEvent] | None = Field(
        None,
        description="With `?include=timeline`: accepted, released, each attempt's start and end (the last "
        "20), finished, and each webhook POST, in time order.",
    )
    eta: str | None = Field(
        None,
        description="When the image should be ready (RFC 3339): the attempt's start, or now while it waits "
        "in the queue, plus the typical attempt measured over recent model calls. Null when unknown, "
        "once passed, while held (a batch item: see the batch's eta), and when final.",
    )
    links: Links


class ErrorBody(BaseModel):
    """The one error shape."""

    code: str
    message: str
    details: dict[str, object] | list[object]


class ErrorResponse(BaseModel):
    """{"error": {...}} for every non-2xx answer."""

    error: ErrorBody


class PresetParam(BaseModel):
    """One parameter of a preset."""

    name: str
    choices: list[str] | None = Field(None, description="The allowed values, when the preset limits them.")
    default: str | None = Field(None, description="Used when the request leaves the parameter out.")
    required: bool
    auto_from: str | None = Field(
        None, description="`auto` is allowed: the photo's analysis fills it from this field of its answer."
    )


class Preset(BaseModel):
    """A named prompt template."""

    name: str
    description: str
    min_images: int = Field(description="Input images the preset needs.")
    price: int = Field(description="Credits per image with the preset's steps (regenerations are free).")
    params: list[PresetParam]
    steps: list[Literal["analyze", "generate", "verify"]] = Field(description="What each image goes through.")
    step_prices: dict[str, int] = Field(
        description="Each step's price in thousandths of a credit; their sum, rounded half up, is `price`."
    )
    rubric: Rubric | None = Field(None, description="What verification checks (null: not verified).")


class Rubric(BaseModel):
    """A preset's verification: its checks, the score to reach, the regenerations allowed."""

    checks: list[str]
    threshold: float
    max_regenerations: int = Field(description="The default; a request may lower it, not raise it.")


class PresetList(BaseModel):
    """GET /v1/presets."""

    presets: list[Preset]
