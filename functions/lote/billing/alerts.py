"""Account events around a charge (billing/spend.py stages and derives them): a refusal at a spend
cap tells the tenant once per period, and what a commit staged is enqueued after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lote.billing import spend
from lote.services import Services
from lote.webhooks import service as webhooks


@contextmanager
def refusals(services: Services, tenant_id: str) -> Iterator[None]:
    """Around a charge: when a spend cap refuses it, `account.cap_reached` (once per tenant and
    period), and the refusal goes on to the caller unchanged."""
    try:
        yield
    except spend.SpendCapReached as refused:
        if "period" in refused.details:
            created = spend.cap_reached(services.firestore.db, tenant_id, refused)
            if created is not None:
                webhooks.enqueue(services, [created])
        raise


def enqueue(services: Services, staged: list[str]) -> None:
    """After the commit that staged them: the account events' deliveries."""
    webhooks.enqueue(services, list(dict.fromkeys(staged)))
