"""Request and response models of generations; OpenAPI is generated from these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lote.billing.pricing import models as priced_models
from lote.jobs.presets import names as preset_names
from lote.validation import Metadata, Params, RequestModel, literal_host_refusal

AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
OutputFormat = Literal["png", "jpeg", "webp"]
Status = Literal["queued", "running", "succeeded", "failed", "canceled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
MAX_IMAGES = 4
# The models lote has a price for, and the presets it knows: anything else is refused up front.
if TYPE_CHECKING:
    ModelId = str
    PresetName = str
else:  # enums in the OpenAPI document, generated from pricing.json and presets.json
    ModelId = Literal[priced_models()]
    PresetName = Literal[preset_names()]


class GenerationRequest(RequestModel):
    """POST /v1/generations: a prompt, or a preset with params; up to four input images."""

    model_config = ConfigDict(str_strip_whitespace=True)

    prompt: str | None = Field(None, min_length=1, max_length=4000, description="What to generate.")
    preset: PresetName | None = Field(None, description="A named prompt template (GET /v1/presets).")
    params: Params = Field(default_factory=dict)
    images: list[str] = Field(
        default_factory=list,
        max_length=MAX_IMAGES,
        description="Inputs: https:// URLs, gs:// URLs in the input bucket, or data: URIs (≤ 10 MB).",
    )
    model: ModelId | None = Field(None, description="Model id; the default model when absent.")
    aspect_ratio: AspectRatio | None = Field(
        None, description="Output aspect ratio; when absent the model keeps the first input image's."
    )
    output_format: OutputFormat = "png"
    metadata: Metadata = Field(default_factory=dict)
    webhook_url: str | None = Field(
        None, min_length=1, max_length=2048, description="Where events are POSTed (https, public)."
    )

    @field_validator("images")
    @classmethod
    def _image_schemes(cls, images: list[str]) -> list[str]:
        for image in images:
            if not image.startswith(("https://", "gs://", "data:")):
                raise ValueError("each image must be an https:// URL, a gs:// URL or a data: URI")
            if not image.startswith("data:") and len(image) > 2048:
                raise ValueError("image URLs are limited to 2048 characters")
            refusal = literal_host_refusal(image) if image.startswith("https://") else None
            if refusal is not None:
                raise ValueError(f"image URL {refusal}")
        return images

    @field_validator("webhook_url")
    @classmethod
    def _webhook_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("webhook_url must be an https URL")
        return url

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
    links: Links


class ErrorBody(BaseModel):
    """The one error shape."""

    code: str
    message: str
    details: dict[str, object] | list[object]


class ErrorResponse(BaseModel):
    """{"error": {...}} for every non-2xx answer."""

    error: ErrorBody
