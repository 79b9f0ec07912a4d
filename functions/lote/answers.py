"""What a handler answers: status, JSON body and headers, rendered as is by the route."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    """An HTTP answer a route renders as is."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
