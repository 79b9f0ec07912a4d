"""The function entry points through functions-framework's own app: routing and the error shape."""

from __future__ import annotations

import pytest
from functions_framework import create_app

from lote_local.config import REPO_ROOT

SOURCE = str(REPO_ROOT / "functions" / "main.py")


@pytest.fixture(params=["api", "worker", "stripe_webhook"])
def client(request: pytest.FixtureRequest):
    return create_app(target=request.param, source=SOURCE).test_client()


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"


def test_unknown_route_is_a_json_404(client):
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json == {
        "error": {"code": "not_found", "message": "no such route", "details": {"path": "/no/such/route"}}
    }


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET"}  # RFC 9110: a 405 lists what is allowed


@pytest.mark.parametrize("path", ["/v1/generations/%0A", "/%0A", "/v1/%0Abatches", "/a%0D%0Ab"])
def test_a_path_the_framework_cannot_route_is_a_json_404(client, path):
    # The framework's catch-all route does not match a newline: its HTML 404 used to answer.
    response = client.get(path)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_a_bug_is_a_500_that_leaks_nothing():
    from lote.web import create

    def register(app):
        @app.get("/boom")
        def boom():
            raise RuntimeError("database password is hunter2")

    response = create("t", register).test_client().get("/boom")
    assert response.status_code == 500
    assert response.json == {"error": {"code": "internal", "message": "internal error", "details": {}}}
    assert b"hunter2" not in response.data


def test_a_post_body_is_read_once_and_validated_through_the_framework():
    client = create_app(target="api", source=SOURCE).test_client()
    response = client.post("/v1/generations", json={"prompt": "x"})
    assert response.status_code == 401  # the body survived routing; authentication comes first
    assert response.json["error"]["code"] == "unauthenticated"


def test_body_limit_is_enforced_in_process():
    client = create_app(target="api", source=SOURCE).test_client()
    response = client.post("/v1/generations", data=b"x" * (33 * 1024 * 1024), content_type="application/json",
                           headers={"Authorization": "Bearer k"})  # fmt: skip
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"


def test_admin_routes_refuse_everything_without_a_configured_token():
    client = create_app(target="api", source=SOURCE).test_client()
    response = client.post(
        "/v1/admin/tenants", json={"name": "x"}, headers={"Authorization": "Bearer anything"}
    )
    assert response.status_code == 403
    assert response.json["error"]["code"] == "admin_disabled"
