"""One delivery attempt: claim, check the URL again, sign, POST (10 s, no redirects), record.

Answers to Cloud Tasks: 200 when the receiver acknowledged (2xx), when the delivery is finished
(failed for good, superseded, or already delivered), 500 to be retried later. Never 429/503: one
slow receiver must not slow every tenant's deliveries on the shared queue.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from lote import logs, retries, tasks, timeutil, tracing
from lote.answers import Answer
from lote.leases import ClaimKind
from lote.netguard import pinned_pool
from lote.services import Services
from lote.statuses import DeliveryStatus
from lote.webhooks import signing, store, urls
from lote.webhooks.documents import DeliveryAttempt, delivery_of

log = logging.getLogger("lote.webhooks")
USER_AGENT = "lote-webhooks/1"
LEASE_MARGIN_S = 20.0
# A delivery keeps its promise when the receiver has it within this long of its event (the webhook
# SLO in terraform/slos.tf counts `within_target`; decision note 2026-12-05-dashboard-slos-budget).
LAG_TARGET_S = 60


@dataclass(frozen=True)
class Outcome:
    """What one POST got."""

    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def acknowledged(self) -> bool:
        """A 2xx answer: the receiver has it."""
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url: str, address: str, headers: dict[str, str], body: bytes, timeout_s: float) -> Outcome:
    """POST to `url` connected to the checked `address` (no DNS rebinding), never following redirects."""
    import urllib3

    parts = urlsplit(url)
    pool = pinned_pool(url, address, timeout_s)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST", path, body=body, headers={**headers, "Host": parts.netloc}, redirect=False, retries=False
        )
        status, error = response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib3.exceptions.HTTPError as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"[:300]
    finally:
        pool.close()
    return Outcome(status, int((time.monotonic() - started) * 1000), error)


def deliver(services: Services, delivery_id: str, gen: int, retry_count: int) -> Answer:
    """Attempt one delivery (idempotent: a finished delivery or a superseded task is a no-op)."""
    s = services.settings
    db = services.firestore.db
    lease = dt.timedelta(seconds=s.webhook_timeout_s + LEASE_MARGIN_S)
    claim = store.claim(db, delivery_id, gen, lease, tasks.check_at(services, tasks.DeliverWebhook))
    if claim.kind is ClaimKind.NOOP:
        return Answer(200, {"result": "noop", "reason": claim.reason})
    if claim.kind is ClaimKind.BUSY:
        return Answer(409, {"result": "busy", "reason": claim.reason})
    delivery = delivery_of(claim.doc)
    now = timeutil.now()
    permanent = False
    try:
        _, address = urls.resolve(s, delivery["url"])
    except urls.UrlRefused as exc:
        outcome, permanent = Outcome(None, 0, f"url refused: {exc}"), True
    else:
        body = delivery["body"].encode()
        stamp = int(time.time())
        live = store.signing_secrets(store.secrets(db, delivery["tenant_id"]), now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signing.header(live, delivery_id, stamp, body),
        }
        with tracing.span("webhook.post", delivery_id=delivery_id):
            # The receiver may join the image's trace (the POST goes through a pinned urllib3 pool,
            # which no instrumentation sees: the header is put here).
            outcome = post(
                delivery["url"], address, {**headers, **tracing.headers()}, body, s.webhook_timeout_s
            )
    last = permanent or retries.is_last_attempt(
        s.webhook_max_attempts, s.webhook_max_retry_s, retry_count, delivery["cycle_started_at"]
    )
    if outcome.acknowledged:
        status = DeliveryStatus.DELIVERED
    else:
        status = DeliveryStatus.FAILED if last else DeliveryStatus.PENDING
    attempt: DeliveryAttempt = {
        "at": now, "status_code": outcome.status_code, "latency_ms": outcome.latency_ms,
        "error": outcome.error, "retry_count": retry_count,
    }  # fmt: skip
    store.record(db, delivery_id, delivery, attempt, status)
    if status == DeliveryStatus.PENDING:
        log.info(
            "webhook %s to %s not acknowledged (%s); the queue retries",
            delivery_id,
            delivery["url"],
            outcome.error,
        )
        return Answer(500, {"result": "retry", "error": outcome.error})
    attempts = int(delivery.get("attempt_count", 0)) + 1
    # From the event (its delivery's cycle: a resend starts a new one) to now, for the dashboard
    # and the webhook SLO.
    since = delivery.get("cycle_started_at") or delivery.get("created_at")
    lag_ms = None if since is None else max(0, round((timeutil.now() - since).total_seconds() * 1000))
    if status == DeliveryStatus.DELIVERED:
        logs.emit(log, logging.INFO, "webhook.delivered", "webhook %s delivered after %d attempts, %s ms",
                  delivery_id, attempts, lag_ms, delivery_id=delivery_id, type=delivery.get("type"),
                  attempts=attempts, lag_ms=lag_ms,
                  within_target=lag_ms is not None and lag_ms <= LAG_TARGET_S * 1000)  # fmt: skip
    if status == DeliveryStatus.FAILED:
        logs.emit(log, logging.WARNING, "webhook.failed", "webhook %s failed for good after %d attempts: %s",
                  delivery_id, attempts, outcome.error, delivery_id=delivery_id, type=delivery.get("type"),
                  attempts=attempts, error=outcome.error, lag_ms=lag_ms, within_target=False)  # fmt: skip
    return Answer(200, {"result": status})
