"""A value built on first use, once per process, however many threads ask at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """Calls `build` the first time `get` is called (under a lock), then returns the same value."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        """The value, built now if it was not yet."""
        value = self._value
        if value is not None:  # built: no lock on the hot path (every Firestore call asks)
            return value
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value
