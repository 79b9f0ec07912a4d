"""How long finished records are kept: the `expires_at` that Firestore TTL policies delete by."""

from __future__ import annotations

import datetime as dt

from lote.settings import get_settings


def expires_at(finished: dt.datetime) -> dt.datetime:
    """When a record finished at `finished` may be deleted (TTL deletion can lag by a day)."""
    return finished + dt.timedelta(days=get_settings().retention_days)
