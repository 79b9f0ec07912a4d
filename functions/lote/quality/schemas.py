"""What the text model answers in the pipeline's steps (google-genai `response_schema`), and the
`quality` a job records.

The schemas' titles (`Analysis`, `Verdict`) name the step: the offline model keys its knobs on
them (infra/local/lote_local/text_model.py)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, create_model

RoomType = Literal[
    "living room", "bedroom", "kitchen", "dining room", "office", "bathroom", "kids room", "garage", "other"
]


class Analysis(BaseModel):
    """What the analyzer sees in the input photo before anything is generated."""

    is_interior: bool = Field(description="The photo shows the inside of a room.")
    is_empty: bool = Field(description="The room has no furniture (walls, floor and fixtures only).")
    room_type: RoomType
    fixed_elements: list[str] = Field(description="Windows, doors and built-ins that must not move.")
    perspective: str = Field(description="Camera height, angle and lens, in a few words.")
    lighting: str = Field(description="Where the light comes from and how bright it is.")


class Check(BaseModel):
    """One rubric item of a verdict, as stored on the job."""

    name: str
    passed: bool
    finding: str = ""


@lru_cache(maxsize=32)
def verdict_model(checks: tuple[str, ...]) -> type[BaseModel]:
    """The verify step's response schema for a rubric: one entry per named check and a 0–1 score
    (a Literal per rubric, so the model answers every check and nothing else)."""
    rubric_check = create_model(
        "RubricCheck",
        name=(Literal[checks], ...),  # type: ignore[arg-type]  # a Literal built at run time
        passed=(bool, ...),
        finding=(str, Field(description="What is wrong, where; empty when the check passes.")),
    )
    return create_model(
        "Verdict",
        checks=(list[rubric_check], ...),
        score=(float, Field(ge=0, le=1, description="Overall quality from 0 (unusable) to 1.")),
    )


class Quality(BaseModel):
    """What verification concluded about a generation (`quality` on GET, items, results, webhooks)."""

    passed: bool
    score: float | None = Field(description="The delivered image's score; null when it went unverified.")
    checks: list[Check]
    regenerations: int = Field(description="Images generated again after a failed verification.")
    verifier_model: str
    unverified: str | None = Field(
        None, description="Why the delivered image has no verdict: the verifier's last failure."
    )
