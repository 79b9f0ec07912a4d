"""The stored shape of a model batch job (`model_batches/{mb_…}`): the lote side of one Gemini batch
mode job, from its gathering to its lines landed (batchmode/service.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict, cast


class ModelBatchDoc(TypedDict, total=False):
    """A model batch job: `state` gathered → submitted → ended (rules.State)."""

    state: str
    model: str
    count: int  # jobs marked as its requests when gathered
    created_at: dt.datetime
    submitted_at: dt.datetime | None
    ended_at: dt.datetime | None
    ended: bool  # for the sweep's query of the unended
    check_at: dt.datetime  # the next look is due by then: past it (and the repair window), it is restarted
    submit_gen: int  # the submission task's generation (the sweep's restart moves it)
    poll_seq: int  # the look that is due
    name: str | None  # Gemini's `batches/…`
    model_state: str | None  # Gemini's last state of it (JOB_STATE_…)
    fingerprints: dict[str, str]  # job → its request's fingerprint, for the jobs that make their image
    cancel_asked: bool  # every request's job had a cancel requested: the model batch job was canceled
    outcome: dict[str, int]  # once ended: its jobs by how they ended (landed, back online, …)


def model_batch_of(data: Mapping[str, Any] | None) -> ModelBatchDoc | None:
    """A model batch document as read, typed; None when it does not exist."""
    return cast(ModelBatchDoc, dict(data)) if data is not None else None
