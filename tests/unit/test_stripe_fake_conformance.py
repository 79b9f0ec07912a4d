"""The offline Stripe's objects hold to the pinned stripe library's generated types: every field it
sends is one the library declares on that object, and every enumerated value is one of the
library's. (What it sends is shaped after tests/fixtures/stripe/; this keeps it from inventing.)"""

from __future__ import annotations

import typing
from typing import Any

import stripe

from lote_local.stripe_fake import FakeStripe

KEY = "sk_test_conformance"
TYPES: dict[str, type] = {
    "checkout.session": stripe.checkout.Session,
    "charge": stripe.Charge,
    "refund": stripe.Refund,
    "dispute": stripe.Dispute,
    "payment_intent": stripe.PaymentIntent,
    "customer": stripe.Customer,
    "price": stripe.Price,
    "event": stripe.Event,
    "balance_transaction": stripe.BalanceTransaction,
}


def _declared(cls: type) -> dict[str, Any]:
    """The library's annotations of a resource, base classes' included."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        found.update(getattr(klass, "__annotations__", {}))
    return found


def _enum(annotation: Any) -> tuple[set[str], bool] | None:
    """The Literal values a field admits, and whether it also admits any string (the library's
    `Union[Literal[...], str]` for enums Stripe may extend); None for a field with no Literal."""
    values: set[str] = set()
    open_string = False

    def walk(node: Any) -> None:
        nonlocal open_string
        if node is str:
            open_string = True
        if typing.get_origin(node) is typing.Literal:
            values.update(str(v) for v in typing.get_args(node))
            return
        for arg in typing.get_args(node):
            walk(arg)

    walk(annotation)
    return (values, open_string) if values else None


def _everything_the_fake_makes() -> tuple[FakeStripe, list[dict[str, Any]]]:
    fake = FakeStripe(KEY, {"credits_100": 500}, "http://127.0.0.1:9/unused", "whsec_conformance")
    client = fake.app.test_client()
    auth = {"Authorization": f"Bearer {KEY}"}
    customer = client.post("/v1/customers", data={"name": "c"}, headers=auth).get_json()
    price = client.get("/v1/prices", query_string={"lookup_keys[0]": "credits_100"}, headers=auth).get_json()
    form = {"mode": "payment", "customer": customer["id"], "line_items[0][price]": price["data"][0]["id"],
            "line_items[0][quantity]": "1", "metadata[tenant_id]": "ten_x", "metadata[credits]": "100"}  # fmt: skip
    sessions = [
        client.post("/v1/checkout/sessions", data=form, headers=auth).get_json()["id"] for _ in range(3)
    ]
    events = [fake.complete(sessions[0], deliver=False)["event"]]
    events.append(fake.complete(sessions[1], deliver=False, pending=True)["event"])
    events.append(fake.settle(sessions[1], "failed", deliver=False)["event"])
    events.append(fake.expire(sessions[2], deliver=False)["event"])
    charge = fake.charge_of(sessions[0])
    refunded = fake.refund(charge, 100, deliver=False)
    events += [refunded["event"], fake.fail_refund(refunded["refund"], "declined", deliver=False)["event"]]
    for status, inquiry in (("won", False), ("lost", False), ("warning_closed", True)):
        opened = fake.dispute(charge, None, "fraudulent", inquiry, deliver=False)
        events += opened["events"] + fake.close_dispute(opened["dispute"], status, deliver=False)["events"]
    return fake, events


def _check(kind: str, obj: dict[str, Any], where: str) -> list[str]:
    declared = _declared(TYPES[kind])
    problems = []
    for field, value in obj.items():
        if field.startswith("_"):
            continue
        if field not in declared:
            problems.append(f"{where}: {kind}.{field} is not a field of {TYPES[kind].__name__}")
            continue
        enum = _enum(declared[field])
        # Values must be the library's own, even where the type also admits any string.
        if enum is not None and isinstance(value, str) and value not in enum[0]:
            problems.append(f"{where}: {kind}.{field} = {value!r} is not one of {sorted(enum[0])}")
    return problems


def test_every_object_and_event_the_offline_stripe_sends_is_one_the_library_knows():
    fake, events = _everything_the_fake_makes()
    problems: list[str] = []
    for obj in fake.objects.values():
        problems += _check(str(obj["object"]), obj, obj["id"])
    for event in events:
        problems += _check("event", {k: v for k, v in event.items() if k != "data"}, event["type"])
        inner = event["data"]["object"]
        problems += _check(str(inner["object"]), inner, event["type"])
        for transaction in inner.get("balance_transactions") or []:
            problems += _check("balance_transaction", transaction, f"{event['type']} balance_transactions")
    assert not problems, "\n".join(problems)
    kinds = {e["type"] for e in events}
    assert kinds >= {"checkout.session.completed", "checkout.session.async_payment_failed",
                     "checkout.session.expired", "charge.refunded", "charge.refund.updated",
                     "charge.dispute.created", "charge.dispute.funds_withdrawn",
                     "charge.dispute.funds_reinstated", "charge.dispute.closed"}  # fmt: skip


def test_the_dispute_statuses_the_fake_reaches_are_the_librarys():
    fake, _ = _everything_the_fake_makes()
    statuses = {o["status"] for o in fake.objects.values() if o["object"] == "dispute"}
    declared = _enum(_declared(stripe.Dispute)["status"])
    assert declared is not None
    assert statuses == {"won", "lost", "warning_closed"} and statuses <= declared[0]


def test_the_check_itself_catches_an_invented_field_and_an_unknown_enum_value():
    assert _check("dispute", {"object": "dispute", "winner": "us"}, "x") == [
        "x: dispute.winner is not a field of Dispute"
    ]
    assert _check("dispute", {"object": "dispute", "status": "pending"}, "x")
    assert _check("checkout.session", {"object": "checkout.session", "payment_status": "paid"}, "x") == []
