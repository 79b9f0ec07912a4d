"""An offline stand-in for the parts of the Stripe API lote calls, plus a pretend hosted checkout.

Speaks Stripe's wire format (form-encoded nested parameters in, JSON objects and Stripe-shaped
errors out, Idempotency-Key replay, lists with `created[gte]` and `starting_after`) so the
unmodified stripe library talks to it through `base_addresses`. What Stripe would send, it sends to
the webhook URL, signed with the stripe library's own scheme (with every secret of a roll: one `v1`
each), shaped as the recorded payloads in tests/fixtures/stripe/:
- paying a session (GET its checkout URL, or POST /_fake/sessions/{id}/complete; `?async=1` leaves
  it unpaid, as a bank debit does, until POST /_fake/sessions/{id}/async {"result": "succeeded" |
  "failed"}) → `checkout.session.completed` (then `.async_payment_succeeded` / `_failed`);
  POST /_fake/sessions/{id}/expire → `checkout.session.expired`;
- POST /_fake/charges/{id}/refund {"amount"} → a refund and `charge.refunded`; POST
  /_fake/refunds/{id}/fail {"failure_reason"} → `charge.refund.updated` (the refund failed);
- POST /_fake/charges/{id}/dispute {"amount", "reason", "inquiry"} → `charge.dispute.created` (and
  `.funds_withdrawn` unless an inquiry); POST /_fake/disputes/{id}/close {"status": "won" | "lost" |
  "warning_closed"} → `.funds_reinstated` when won, then `charge.dispute.closed`;
- `?deliver=0` returns the event without sending it (a delivery that never arrived); `?livemode=1`
  marks it live; POST /_fake/secrets {"secrets": [...]} signs with each (a secret roll).
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from typing import Any

import flask
import requests
from werkzeug.serving import make_server

API_VERSION = "2025-01-27.acacia"


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's nested form encoding (`a[b][0][c]=v`) as dicts, with all-digit keys as lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + [p.rstrip("]") for p in rest.split("[")] if rest else [head]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


class FakeStripe:
    """State and routes of the fake; one lock around every change."""

    def __init__(self, api_key: str, prices: dict[str, int], webhook_url: str, webhook_secret: str) -> None:
        self.api_key = api_key
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.secrets = [webhook_secret]  # during a roll, every one signs (one v1 each)
        self.lock = threading.Lock()
        self.objects: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.prices: list[dict[str, Any]] = []
        for lookup_key, amount in prices.items():
            price: dict[str, Any] = {"id": _id("price"), "object": "price", "lookup_key": lookup_key,
                                     "active": True, "unit_amount": amount, "currency": "usd"}  # fmt: skip
            self.prices.append(price)
            self.objects[price["id"]] = price
        self.app = self._routes()

    # --- Stripe API ---------------------------------------------------------------------------

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> flask.Response:
        response = flask.jsonify({"error": {"type": kind, "message": message}})
        response.status_code = status
        return response

    def _api(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/customers":
            customer = {"id": _id("cus"), "object": "customer", "name": params.get("name"),
                        "metadata": params.get("metadata", {}), "created": int(time.time())}  # fmt: skip
            self.objects[customer["id"]] = customer
            return 200, customer
        if method == "GET" and path == "/v1/prices":
            keys = params.get("lookup_keys", [])
            found = [p for p in self.prices if p["lookup_key"] in keys]
            return 200, {"object": "list", "data": found, "has_more": False, "url": "/v1/prices"}
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._create_session(params)
        listed = {
            "/v1/checkout/sessions": "checkout.session",
            "/v1/disputes": "dispute",
            "/v1/refunds": "refund",
        }
        if method == "GET" and path in listed:
            return 200, self._list(path, listed[path], params)
        kind, _, object_id = path.removeprefix("/v1/").rpartition("/")
        readable = ("customers", "checkout/sessions", "charges", "payment_intents", "disputes", "refunds")
        if method == "GET" and kind in readable and object_id in self.objects:
            return 200, self.objects[object_id]
        if method == "GET" and kind in readable:
            missing = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": f"No such object: '{object_id}'",
            }
            return 404, {"error": missing}
        return 404, {"error": {"type": "invalid_request_error", "message": f"no such route {method} {path}"}}

    def _list(self, path: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """Objects of `kind`, newest first, created at or after `created[gte]`, after `starting_after`."""
        since = int((params.get("created") or {}).get("gte", 0))
        mine = (o for o in self.objects.values() if o.get("object") == kind and o["created"] >= since)
        found = sorted(mine, key=lambda o: (-o["created"], o["id"]))
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit", 10))
        return {"object": "list", "data": [_public(o) for o in found[:limit]], "has_more": len(found) > limit,
                "url": path}  # fmt: skip

    def _create_session(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        customer = params.get("customer")
        if customer not in self.objects:
            return 400, {
                "error": {"type": "invalid_request_error", "message": f"No such customer: {customer}"}
            }
        items = params.get("line_items") or []
        total = 0
        for item in items:
            price = self.objects.get(item.get("price", ""))
            if price is None:
                return 400, {"error": {"type": "invalid_request_error", "message": "No such price"}}
            total += int(price["unit_amount"]) * int(item.get("quantity", 1))
        session_id = _id("cs")
        session = {
            "id": session_id, "object": "checkout.session", "mode": params.get("mode"), "status": "open",
            "payment_status": "unpaid", "customer": customer, "amount_total": total, "currency": "usd",
            "client_reference_id": params.get("client_reference_id"), "metadata": params.get("metadata", {}),
            "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
            "payment_intent": None, "url": f"{flask.request.host_url}checkout/{session_id}",
            "created": int(time.time()), "livemode": False,
            "_intent_metadata": (params.get("payment_intent_data") or {}).get("metadata", {}),
        }  # fmt: skip
        self.objects[session_id] = session
        return 200, _public(session)

    # --- what Stripe would do when the buyer pays or the operator refunds ---------------------

    def complete(
        self, session_id: str, deliver: bool = True, pending: bool = False, live: bool = False
    ) -> dict[str, Any]:
        """Pay a session and send `checkout.session.completed` (again, if it is already paid); a
        `pending` payment (a bank debit) completes the session unpaid until `settle`."""
        with self.lock:
            session = self.objects[session_id]
            if pending and session["payment_status"] != "paid":
                session.update(status="complete", payment_status="unpaid")
                event = self._event("checkout.session.completed", _public(session), live)
                return {"event": event, "status": self.send(event) if deliver else None}
            if session["payment_status"] != "paid":
                intent, charge = _id("pi"), _id("ch")
                self.objects[intent] = {
                    "id": intent, "object": "payment_intent", "amount": session["amount_total"],
                    "status": "succeeded", "metadata": session["_intent_metadata"], "latest_charge": charge,
                }  # fmt: skip
                # The charge's own metadata is left empty: lote must not rely on Stripe copying it.
                self.objects[charge] = {
                    "id": charge, "object": "charge", "amount": session["amount_total"], "amount_refunded": 0,
                    "refunded": False, "currency": "usd", "payment_intent": intent, "metadata": {},
                    "customer": session["customer"], "created": int(time.time()), "disputed": False,
                    "livemode": live, "status": "succeeded", "paid": True, "captured": True,
                }  # fmt: skip
                session.update(status="complete", payment_status="paid", payment_intent=intent)
            event = self._event("checkout.session.completed", _public(session), live)
        return {"event": event, "status": self.send(event) if deliver else None}

    def settle(self, session_id: str, result: str, deliver: bool = True) -> dict[str, Any]:
        """The pending payment of a session succeeds (it is paid: a charge) or fails."""
        if result == "succeeded":
            done = self.complete(session_id, deliver=False)
            with self.lock:
                event = self._event(
                    "checkout.session.async_payment_succeeded", done["event"]["data"]["object"]
                )
        else:
            with self.lock:
                event = self._event(
                    "checkout.session.async_payment_failed", _public(self.objects[session_id])
                )
        return {"event": event, "status": self.send(event) if deliver else None}

    def expire(self, session_id: str, deliver: bool = True) -> dict[str, Any]:
        """An open session expires (its buyer never paid)."""
        with self.lock:
            session = self.objects[session_id]
            session.update(status="expired")
            event = self._event("checkout.session.expired", _public(session))
        return {"event": event, "status": self.send(event) if deliver else None}

    def refund(self, charge_id: str, amount: int | None, deliver: bool = True) -> dict[str, Any]:
        """Refund part or all of a charge and send `charge.refunded` (amount_refunded is cumulative)."""
        with self.lock:
            charge = self.objects[charge_id]
            left = charge["amount"] - charge["amount_refunded"]
            taken = min(left, amount if amount is not None else left)
            charge["amount_refunded"] += taken
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            refund = {"id": _id("re"), "object": "refund", "amount": taken, "charge": charge_id,
                      "payment_intent": charge["payment_intent"], "currency": charge["currency"],
                      "status": "succeeded", "reason": "requested_by_customer", "created": int(time.time()),
                      "metadata": {}, "failure_reason": None}  # fmt: skip
            self.objects[refund["id"]] = refund
            event = self._event("charge.refunded", dict(charge))
        return {"event": event, "refund": refund["id"], "status": self.send(event) if deliver else None}

    def fail_refund(self, refund_id: str, reason: str, deliver: bool = True) -> dict[str, Any]:
        """A refund fails after the fact (the card was closed): its amount goes back to the charge."""
        with self.lock:
            refund = self.objects[refund_id]
            charge = self.objects[refund["charge"]]
            if refund["status"] != "failed":
                refund.update(status="failed", failure_reason=reason)
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
            event = self._event("charge.refund.updated", dict(refund))
        return {"event": event, "status": self.send(event) if deliver else None}

    def dispute(
        self, charge_id: str, amount: int | None, reason: str, inquiry: bool, deliver: bool = True
    ) -> dict[str, Any]:
        """A chargeback (or an inquiry) on a charge: `charge.dispute.created`, then, for a chargeback,
        `charge.dispute.funds_withdrawn` as Stripe sends them."""
        with self.lock:
            charge = self.objects[charge_id]
            disputed = charge["amount"] if amount is None else amount
            dispute = {"id": _id("dp"), "object": "dispute", "amount": disputed, "charge": charge_id,
                       "payment_intent": charge["payment_intent"], "currency": charge["currency"],
                       "reason": reason, "status": "warning_needs_response" if inquiry else "needs_response",
                       "is_charge_refundable": False, "livemode": False, "metadata": {},
                       "created": int(time.time()),
                       "balance_transactions": [] if inquiry else [
                           {"object": "balance_transaction", "amount": -disputed, "fee": 1500,
                            "reporting_category": "dispute", "type": "adjustment"}]}  # fmt: skip
            self.objects[dispute["id"]] = dispute
            charge["disputed"] = True
            events = [self._event("charge.dispute.created", dict(dispute))]
            if not inquiry:
                events.append(self._event("charge.dispute.funds_withdrawn", dict(dispute)))
        sent = [self.send(e) for e in events] if deliver else None
        return {"events": events, "dispute": dispute["id"], "status": sent}

    def close_dispute(self, dispute_id: str, status: str, deliver: bool = True) -> dict[str, Any]:
        """The dispute is decided: won (the funds come back first), lost, or an inquiry closed."""
        with self.lock:
            dispute = self.objects[dispute_id]
            dispute["status"] = status
            events = []
            if status == "won":
                dispute["balance_transactions"] = [*dispute["balance_transactions"],
                    {"object": "balance_transaction", "amount": dispute["amount"], "fee": 0,
                     "reporting_category": "dispute_reversal", "type": "adjustment"}]  # fmt: skip
                events.append(self._event("charge.dispute.funds_reinstated", dict(dispute)))
            events.append(self._event("charge.dispute.closed", dict(dispute)))
        sent = [self.send(e) for e in events] if deliver else None
        return {"events": events, "status": sent}

    def charge_of(self, session_id: str) -> str:
        """The charge that paid a session."""
        intent = self.objects[session_id]["payment_intent"]
        return next(
            o["id"]
            for o in self.objects.values()
            if o.get("object") == "charge" and o["payment_intent"] == intent
        )

    def _event(self, kind: str, obj: dict[str, Any], live: bool = False) -> dict[str, Any]:
        live = live or bool(obj.get("livemode"))
        return {"id": _id("evt"), "object": "event", "type": kind, "api_version": API_VERSION,
                "created": int(time.time()), "livemode": live, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "data": {"object": obj}}  # fmt: skip

    def send(self, event: dict[str, Any]) -> int:
        """POST an event to the webhook URL, signed as Stripe signs (one attempt; the caller retries)."""
        payload = json.dumps(event)
        response = requests.post(
            self.webhook_url,
            data=payload.encode(),
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(payload, *self.secrets),
            },
            timeout=30,
        )
        return response.status_code

    # --- HTTP ---------------------------------------------------------------------------------

    def _routes(self) -> flask.Flask:
        app = flask.Flask("stripe_fake")

        @app.get("/healthz")
        def healthz() -> flask.Response:
            return flask.jsonify({"status": "ok"})

        @app.route("/v1/<path:rest>", methods=["GET", "POST", "DELETE"])
        def api(rest: str) -> flask.Response:
            request = flask.request
            if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                return self._error(401, "Invalid API Key provided", "authentication_error")
            pairs = list((request.form if request.method == "POST" else request.args).items(multi=True))
            params = parse_form(pairs)
            key = request.headers.get("Idempotency-Key")
            with self.lock:
                self.requests.append({"method": request.method, "path": request.path, "params": params,
                                      "idempotency_key": key})  # fmt: skip
                if key is not None and (key, request.path) in self.idempotent:
                    status, body = self.idempotent[(key, request.path)]
                else:
                    status, body = self._api(request.method, request.path, params)
                    if key is not None and request.method == "POST":
                        self.idempotent[(key, request.path)] = (status, body)
            response = flask.jsonify(body)
            response.status_code = status
            return response

        @app.get("/checkout/<session_id>")
        def hosted_checkout(session_id: str) -> flask.Response:
            if session_id not in self.objects:
                return self._error(404, "no such session")
            done = self.complete(session_id)
            target = self.objects[session_id]["success_url"]
            page = f"<p>Paid (fake Stripe). Webhook answered {done['status']}.</p><a href='{target}'>Back</a>"
            return flask.Response(page, mimetype="text/html")

        def deliver() -> bool:
            return flask.request.args.get("deliver", "1") != "0"  # ?deliver=0: the event is only returned

        def body() -> dict[str, Any]:
            found: dict[str, Any] = flask.request.get_json(silent=True) or {}
            return found

        @app.post("/_fake/sessions/<session_id>/complete")
        def fake_complete(session_id: str) -> flask.Response:
            pending = flask.request.args.get("async") == "1"
            live = flask.request.args.get("livemode") == "1"
            done = self.complete(session_id, deliver(), pending, live)
            return flask.jsonify({**done, "charge": None if pending else self.charge_of(session_id)})

        @app.post("/_fake/sessions/<session_id>/async")
        def fake_settle(session_id: str) -> flask.Response:
            done = self.settle(session_id, str(body().get("result", "succeeded")), deliver())
            paid = self.objects[session_id]["payment_status"] == "paid"
            return flask.jsonify({**done, "charge": self.charge_of(session_id) if paid else None})

        @app.post("/_fake/sessions/<session_id>/expire")
        def fake_expire(session_id: str) -> flask.Response:
            return flask.jsonify(self.expire(session_id, deliver()))

        @app.post("/_fake/charges/<charge_id>/refund")
        def fake_refund(charge_id: str) -> flask.Response:
            return flask.jsonify(self.refund(charge_id, body().get("amount"), deliver()))

        @app.post("/_fake/refunds/<refund_id>/fail")
        def fake_fail_refund(refund_id: str) -> flask.Response:
            reason = str(body().get("failure_reason", "expired_or_canceled_card"))
            return flask.jsonify(self.fail_refund(refund_id, reason, deliver()))

        @app.post("/_fake/charges/<charge_id>/dispute")
        def fake_dispute(charge_id: str) -> flask.Response:
            given = body()
            reason, inquiry = str(given.get("reason", "fraudulent")), bool(given.get("inquiry"))
            return flask.jsonify(self.dispute(charge_id, given.get("amount"), reason, inquiry, deliver()))

        @app.post("/_fake/disputes/<dispute_id>/close")
        def fake_close_dispute(dispute_id: str) -> flask.Response:
            return flask.jsonify(self.close_dispute(dispute_id, str(body().get("status", "lost")), deliver()))

        @app.post("/_fake/secrets")
        def fake_secrets() -> flask.Response:
            self.secrets = [str(x) for x in body().get("secrets") or [self.webhook_secret]]
            return flask.jsonify({"secrets": len(self.secrets)})

        @app.post("/_fake/events/<event_id>/send")
        def fake_send(event_id: str) -> flask.Response:
            return flask.jsonify({"status": self.send(body())})

        @app.get("/_fake/requests")
        def fake_requests() -> flask.Response:
            with self.lock:
                return flask.jsonify(list(self.requests))

        return app


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def sign(payload: str, *secrets_: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload`, computed by the stripe library's own scheme: one
    `v1` per secret (while an endpoint's secret rolls, Stripe signs with the old and the new)."""
    import stripe

    stamp = int(time.time()) if timestamp is None else timestamp
    scheme = stripe.WebhookSignature.EXPECTED_SCHEME
    signatures = [stripe.WebhookSignature._compute_signature(f"{stamp}.{payload}", s) for s in secrets_]
    return ",".join([f"t={stamp}", *(f"{scheme}={v}" for v in signatures)])


def main() -> None:
    """`python -m lote_local.stripe_fake --port N --api-key K --webhook-url U --webhook-secret S`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--webhook-secret", required=True)
    parser.add_argument("--prices", default="{}", help='JSON {"lookup_key": unit_amount_in_cents}')
    args = parser.parse_args()
    fake = FakeStripe(args.api_key, json.loads(args.prices), args.webhook_url, args.webhook_secret)
    server = make_server("127.0.0.1", args.port, fake.app, threaded=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
