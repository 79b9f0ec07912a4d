"""The container of settings, lazily built clients and the clock: one per process, or one per app
when a test binds an app to its own (web.build_api_app)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from lote import timeutil
from lote.clients.cloud_tasks import TasksClient
from lote.clients.firestore import FirestoreClient
from lote.clients.model import ModelClient
from lote.clients.storage import StorageClient
from lote.clients.stripe import StripeClient
from lote.settings import Settings, get_settings


@dataclass(frozen=True)
class Services:
    """What a request handler may use; nothing in it connects until first used."""

    settings: Settings
    firestore: FirestoreClient
    storage: StorageClient
    tasks: TasksClient
    model: ModelClient
    stripe: StripeClient
    # What time it is for windows that must be tested without waiting for them (the rate limit).
    clock: Callable[[], dt.datetime] = timeutil.now

    @classmethod
    def build(cls, settings: Settings) -> Services:
        """A container for `settings` (tests build their own)."""
        return cls(
            settings=settings,
            firestore=FirestoreClient(settings),
            storage=StorageClient(settings),
            tasks=TasksClient(settings),
            model=ModelClient(settings),
            stripe=StripeClient(settings),
        )


@lru_cache(maxsize=1)
def get_services() -> Services:
    """The container for the environment's settings, built once per process."""
    return Services.build(get_settings())
