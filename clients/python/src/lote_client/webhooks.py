"""Verifying lote's webhooks (Standard Webhooks): `webhook-id`, `webhook-timestamp` and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per live secret)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lote_client.errors import WebhookVerificationError

PREFIX = "whsec_"
TOLERANCE_S = 300  # a delivery older or newer than this is refused: a replayed capture is not fresh


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | Sequence[str],
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The event, once its signature checks out with `secret` (or any of several: during a rotation
    pass both the new and the old); WebhookVerificationError otherwise. Verify the raw body, exactly
    as received, before parsing it."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, signatures = (
        lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not a whole number of seconds") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance_s} s from now")
    raw = body.encode() if isinstance(body, str) else body
    signed = f"{msg_id}.{timestamp}.".encode() + raw
    secrets = [secret] if isinstance(secret, str) else list(secret)
    expected = [base64.b64encode(hmac.new(_key(s), signed, hashlib.sha256).digest()) for s in secrets]
    for given in signatures.split():
        version, _, value = given.partition(",")
        if version == "v1" and any(hmac.compare_digest(value.encode(), e) for e in expected):
            try:
                event: dict[str, Any] = json.loads(raw)
            except ValueError:
                raise WebhookVerificationError("the signed body is not JSON") from None
            return event
    raise WebhookVerificationError("no signature matches the secret(s)")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None
