"""Stripe events are trusted only with a valid, fresh signature over the exact bytes received."""

from __future__ import annotations

import json
import time

import pytest
from functions_framework import create_app

from lote.billing import stripe_events
from lote.errors import LoteError
from lote.settings import Settings
from lote_local.config import REPO_ROOT
from lote_local.stripe_fake import parse_form, sign

SECRET = "whsec_unit_test_secret"
EVENT = json.dumps({"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {}}})


def settings(secret: str | None = SECRET) -> Settings:
    return Settings.model_validate({"stripe_webhook_secret": secret})


def test_a_valid_signature_yields_the_event():
    event = stripe_events.verify(settings(), EVENT.encode(), sign(EVENT, SECRET))
    assert event["id"] == "evt_1"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        sign(EVENT, "whsec_someone_else"),
        sign(EVENT, SECRET, timestamp=int(time.time()) - stripe_events.TOLERANCE_S - 5),  # stale
        sign(EVENT.replace("evt_1", "evt_2"), SECRET),  # signed another body
    ],
    ids=["missing", "empty", "garbage", "other-secret", "stale", "other-body"],
)
def test_forged_or_stale_signatures_are_refused(header):
    with pytest.raises(stripe_events.InvalidSignature) as caught:
        stripe_events.verify(settings(), EVENT.encode(), header)
    assert caught.value.status == 400 and caught.value.details == {"header": "Stripe-Signature"}


def test_without_a_secret_every_event_is_refused():
    for secret in (None, ""):
        with pytest.raises(stripe_events.WebhookDisabled) as caught:
            stripe_events.verify(settings(secret), EVENT.encode(), sign(EVENT, SECRET))
        assert caught.value.status == 503


def test_a_signed_body_that_is_not_an_event_is_a_400():
    body = json.dumps({"id": "not-an-event"})
    with pytest.raises(stripe_events.InvalidRequest) as caught:
        stripe_events.verify(settings(), body.encode(), sign(body, SECRET))
    assert caught.value.details == {"field": "id"}


def test_the_entry_point_refuses_everything_when_unconfigured():
    from lote.services import get_services
    from lote.settings import get_settings

    get_settings.cache_clear()
    get_services.cache_clear()
    client = create_app(
        target="stripe_webhook", source=str(REPO_ROOT / "functions" / "main.py")
    ).test_client()
    response = client.post("/", data=EVENT, headers={"Stripe-Signature": sign(EVENT, SECRET)})
    assert response.status_code == 503
    assert response.json["error"]["code"] == "stripe_webhook_disabled"


def test_the_fake_reads_stripes_nested_form_encoding():
    pairs = [("line_items[0][price]", "p1"), ("line_items[0][quantity]", "1"), ("metadata[tenant_id]", "t"),
             ("payment_intent_data[metadata][credits]", "5"), ("lookup_keys[0]", "a"), ("lookup_keys[1]", "b")]  # fmt: skip
    assert parse_form(pairs) == {
        "line_items": [{"price": "p1", "quantity": "1"}],
        "metadata": {"tenant_id": "t"},
        "payment_intent_data": {"metadata": {"credits": "5"}},
        "lookup_keys": ["a", "b"],
    }


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("APIConnectionError", 503, "billing_unavailable"),
        ("RateLimitError", 503, "billing_unavailable"),
        ("AuthenticationError", 500, "billing_misconfigured"),
        ("InvalidRequestError", 500, "billing_misconfigured"),
    ],
)
def test_stripe_errors_become_ours(error: str, status: int, code: str):
    import stripe

    from lote.clients.stripe import StripeClient

    client = StripeClient(Settings.model_validate({"stripe_secret_key": "sk_test_x"}))
    kind = getattr(stripe, error)
    raised = kind("boom", "param") if error == "InvalidRequestError" else kind("boom")

    def fail() -> None:
        raise raised

    with pytest.raises(LoteError) as caught:
        client._call(fail)
    assert (caught.value.status, caught.value.code) == (status, code)


def test_checkout_without_a_stripe_key_is_unavailable():
    from lote.clients.stripe import BillingUnavailable, StripeClient

    with pytest.raises(BillingUnavailable):
        _ = StripeClient(Settings()).client
