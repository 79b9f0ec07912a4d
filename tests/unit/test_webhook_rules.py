"""Webhook rules that need no services: signatures, URL policy, and the retry schedule's reach."""

from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from lote.errors import InvalidRequest
from lote.settings import Settings
from lote.webhooks import signing, urls
from lote.webhooks.store import signing_secrets
from lote_local import queue_yaml
from lote_local.config import REPO_ROOT
from lote_local.tasks.rules import RetryPolicy


def test_our_signatures_verify_with_the_reference_package():
    secret, body = signing.new_secret(), json.dumps({"type": "x"}).encode()
    import time

    stamp = int(time.time())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(stamp),
               "webhook-signature": signing.header([secret], "msg_1", stamp, body)}  # fmt: skip
    assert Webhook(secret).verify(body, headers) == {"type": "x"}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


def test_only_the_rotation_overlap_signs_with_two_secrets():
    import datetime as dt

    now = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    found = {"current": "new", "previous": "old", "rotated_at": now - dt.timedelta(hours=23)}
    assert signing_secrets(found, now) == ["new", "old"]
    assert signing_secrets({**found, "rotated_at": now - dt.timedelta(hours=25)}, now) == ["new"]


@pytest.mark.parametrize(
    ("url", "local", "allowed"),
    [
        ("https://127.0.0.1/x", False, False),  # loopback: only the local stack's receivers
        ("http://127.0.0.1/x", True, True),
        ("http://8.8.8.8/x", False, False),  # plain http only in local mode
        ("https://8.8.8.8/x", False, True),
        ("https://10.1.2.3/x", True, False),
        ("https://169.254.169.254/x", True, False),
        ("https://[fd00::1]/x", False, False),
        ("https://metadata.google.internal/x", False, False),
        ("https://no-such-host.invalid/x", False, False),
    ],
)
def test_url_policy(url: str, local: bool, allowed: bool):
    settings = Settings.model_validate({"mode": "local" if local else "production"})
    if allowed:
        urls.check(settings, url, "webhook_url")
    else:
        with pytest.raises(InvalidRequest) as caught:
            urls.check(settings, url, "webhook_url")
        assert caught.value.details == {"field": "webhook_url"}


def test_the_webhooks_queue_keeps_trying_for_at_least_a_day():
    spec = next(q for q in queue_yaml.load(REPO_ROOT / "queue.yaml") if q.name == "webhooks")
    policy = RetryPolicy(spec.max_attempts, spec.max_retry_duration_s, spec.min_backoff_s, spec.max_backoff_s,
                         spec.max_doublings)  # fmt: skip
    attempts, age = 1, 0.0
    while not policy.exhausted(attempts, age):
        age += policy.backoff(attempts)
        attempts += 1
    assert age >= 24 * 3600
    assert Settings().webhook_max_attempts == spec.max_attempts
    assert Settings().webhook_max_retry_s == spec.max_retry_duration_s
