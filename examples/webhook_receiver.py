"""A minimal lote webhook receiver (Flask) that trusts nothing it has not verified.

    pip install ./clients/python flask
    LOTE_WEBHOOK_SECRET=whsec_... flask --app examples/webhook_receiver run --port 8088

During a secret rotation set both secrets, comma-separated (new first): both sign for 24 h.
Deliveries are retried until answered 2xx, so the same event can arrive twice: it is handled once
per `webhook-id`. Answer fast; do slow work (downloading the image) after the 2xx.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request

from lote_client import WebhookVerificationError, webhooks


def create_app(secrets: list[str] | None = None, handle: Any = None) -> Flask:
    """The receiver; `secrets` default to LOTE_WEBHOOK_SECRET, `handle(event)` to printing it."""
    app = Flask(__name__)
    known = secrets or [s.strip() for s in os.environ.get("LOTE_WEBHOOK_SECRET", "").split(",") if s.strip()]
    seen: set[str] = set()  # use your database in production: a restart forgets this set

    @app.post("/lote/webhooks")
    def receive() -> tuple[str, int]:
        try:
            event = webhooks.verify(request.headers, request.get_data(), known)
        except WebhookVerificationError as exc:
            return f"refused: {exc.message}", 400
        event_id = request.headers["webhook-id"]
        if event_id not in seen:
            seen.add(event_id)
            (handle or _print)(event)
        return "", 204

    return app


def _print(event: dict[str, Any]) -> None:
    data = event.get("data", {})
    print(f"{event['type']}: {data.get('id')} {data.get('status')}", flush=True)
