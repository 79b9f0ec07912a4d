"""The states a job, a batch and a webhook delivery can be in, as stored in Firestore.

StrEnums, so a stored or compared value is the plain string (`JobStatus.QUEUED == "queued"`). The
state machines (which transition happens where) are drawn in ARCHITECTURE.md; the response
models' Literal types list the same values (a unit test keeps them equal).
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A generation: a single one, or an item of a batch."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# Nothing changes a terminal job (a batch retry starts a new task generation from `failed`).
TERMINAL: frozenset[str] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
# Refunded when reached (a single generation on its own, a batch item through its batch).
UNPAID: frozenset[str] = frozenset({JobStatus.FAILED, JobStatus.CANCELED})
IN_FLIGHT: tuple[str, ...] = (JobStatus.QUEUED, JobStatus.RUNNING)


class BatchStatus(StrEnum):
    """A batch: `canceled` from the cancel request on, though running items may still finish."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELED = "canceled"


class DeliveryStatus(StrEnum):
    """A webhook delivery: pending until acknowledged, or failed once its retries run out."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
