"""The OpenAPI document: valid OpenAPI 3.1, exactly the routes the api serves, and the contract
details clients rely on (enums, one-of rules, headers, links)."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from lote import openapi
from lote.api.apps import api_app
from lote.quality import presets
from lote.settings import Settings


@pytest.fixture(scope="module", params=["local", "production"])
def document(request: pytest.FixtureRequest) -> dict:
    return openapi.document(Settings(_env_file=None, mode=request.param))


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_it_describes_exactly_the_routes_the_api_serves(document):
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    routes = {
        (method, rule.rule.replace("<", "{").replace(">", "}"))
        for rule in api_app().url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.rule.startswith("/v1/")
    }
    assert routes == documented
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_each_operation_lists_only_what_it_can_answer(document):
    paths = document["paths"]
    # 403: a client token without account:read, or an API key sent from another site's page.
    assert set(paths["/v1/account"]["get"]["responses"]) == {"200", "401", "403", "429", "500", "503"}
    assert paths["/v1/account"]["get"]["security"] == [{"apiKey": []}, {"clientToken": ["account:read"]}]
    assert paths["/v1/client-tokens"]["post"]["security"] == [{"apiKey": []}]  # never a token
    assert "402" in paths["/v1/generations"]["post"]["responses"]
    assert "402" not in paths["/v1/batches/{batch_id}/cancel"]["post"]["responses"]
    assert {"200", "304"} <= set(paths["/v1/generations/{job_id}"]["get"]["responses"])
    assert "429" not in paths["/v1/admin/tenants"]["post"]["responses"]  # admin routes are not rate limited
    assert "409" not in paths["/v1/billing/checkout"]["post"]["responses"]  # Stripe's key follows the body
    assert paths["/v1/batches/{batch_id}/retry"]["post"]["requestBody"]["required"] is False  # {} by default
    assert paths["/v1/generations"]["post"]["requestBody"]["required"] is True
    created = paths["/v1/generations"]["post"]["responses"]["202"]
    assert (
        created["headers"]["Location"]["required"] and created["headers"]["RateLimit-Remaining"]["required"]
    )
    assert set(created["links"]) == {"GetGeneration", "CancelGeneration", "GetGenerationOutput"}
    assert paths["/v1/generations/{job_id}"]["get"]["responses"]["304"]["headers"]["ETag"]["required"]
    assert (
        paths["/v1/batches"]["post"]["responses"]["202"]["links"]["RetryBatch"]["operationId"] == "retryBatch"
    )


def test_enums_and_one_of_rules_come_from_the_catalogues(document):
    schemas = document["components"]["schemas"]
    request = schemas["GenerationRequest"]
    assert len(request["oneOf"]) == 1 + len(presets.catalogue())
    staging = next(
        v for v in request["oneOf"] if v["properties"].get("preset", {}).get("const") == "virtual-staging"
    )
    assert "modern" in staging["properties"]["params"]["properties"]["style"]["enum"]
    assert staging["properties"]["images"]["minItems"] == 1
    assert schemas["CheckoutRequest"]["properties"]["pack"]["enum"] == [
        "credits_100",
        "credits_1000",
        "credits_10000",
    ]
    assert {"items", "items_url"} == {v["required"][0] for v in schemas["BatchRequest"]["oneOf"]}
    statuses = {p["name"]: p for p in document["paths"]["/v1/batches"]["get"]["parameters"]}
    assert statuses["status"]["schema"]["enum"] == ["queued", "running", "completed", "canceled"]


def test_production_documents_https_only_receivers():
    local = openapi.document(Settings(_env_file=None, mode="local"))
    production = openapi.document(Settings(_env_file=None, mode="production"))
    pattern = "properties.webhook_url.anyOf.0.pattern"

    def dig(doc):
        node = doc["components"]["schemas"]["GenerationRequest"]
        for key in pattern.split("."):
            node = node[int(key)] if key.isdigit() else node[key]
        return node

    assert dig(local).startswith("^https?://") and dig(production).startswith("^https://")
