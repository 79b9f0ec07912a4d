"""The shared request types: what may reach Firestore, and JSON Schema's idea of an integer."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lote.jobs.schemas import GenerationRequest
from lote.tenants.schemas import CreditGrant
from lote.validation import has_lone_surrogate


@pytest.mark.parametrize("key", ["a", "order.id", "crm:lead-7", "A_1", "x" * 64])
def test_metadata_keys_firestore_can_store_are_accepted(key):
    assert GenerationRequest(prompt="x", metadata={key: "v"}).metadata == {key: "v"}


@pytest.mark.parametrize("key", ["", "__x__", "_private", ".dot", "a b", "x" * 65, "é"])
def test_metadata_keys_that_could_break_a_write_are_refused(key):
    with pytest.raises(ValidationError):
        GenerationRequest(prompt="x", metadata={key: "v"})


@pytest.mark.parametrize(("value", "ok"), [(3, True), (3.0, True), (3.5, False), (True, False), ("3", False)])
def test_whole_numbers_are_json_schema_integers(value, ok):
    if ok:
        assert CreditGrant.model_validate({"credits": value, "reason": "r"}).credits == 3
    else:
        with pytest.raises(ValidationError):
            CreditGrant.model_validate({"credits": value, "reason": "r"})


@pytest.mark.parametrize(
    ("url", "ok"),
    [("https://example.com/a.png", True), ("https://cdn.example.com:8443/a?b=1", True),
     ("https://10.0.0.1/a.png", False), ("https://[::1]/a", False), ("https://8.8.8.8/a", False),
     ("http://example.com/a.png", False), ("https://exa mple.com/a", False),
     ("data:image/png;base64,iVBORw0KGgo=", True), ("data:text/plain;base64,aGk=", False),
     ("gs://bucket/uploads/ten_x/a.png", True), ("gs://Bucket/a", False)],
)  # fmt: skip
def test_input_urls_name_a_host_or_are_uploads(url, ok):
    if ok:
        assert GenerationRequest(prompt="x", images=[url]).images == [url]
    else:
        with pytest.raises(ValidationError):
            GenerationRequest(prompt="x", images=[url])


def test_prompts_must_hold_more_than_whitespace():
    with pytest.raises(ValidationError):
        GenerationRequest(prompt=" \t ")
    assert GenerationRequest(prompt=" a ").prompt == " a "  # stored as given


def test_lone_surrogates_are_found_anywhere_in_a_body():
    assert has_lone_surrogate({"a": ["ok", {"b": "\ud800"}]})
    assert has_lone_surrogate({"\udfff": 1})
    assert not has_lone_surrogate({"a": ["\U0001f600", 1, None]})


@pytest.mark.parametrize(
    "url", ["https://]B¥d?=8/x", "https://[zz::1]/h", "https://a b/h", "https://@host/h"]
)
def test_receiver_urls_that_urllib_cannot_split_are_refused_by_their_shape(url):
    # The fuzzer found https://]B¥d… accepted by the old shape, then a 500 when split.
    with pytest.raises(ValidationError):
        GenerationRequest(prompt="x", webhook_url=url)


def test_a_url_urllib_cannot_split_is_a_refusal_not_a_fault():
    from lote.settings import Settings
    from lote.webhooks import urls

    with pytest.raises(urls.UrlRefused):
        urls.resolve(Settings(_env_file=None, mode="local"), "https://[::::]/hook")


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_ports_urllib_would_refuse_are_refused_at_submission(port):
    # A port out of range passed the old shape and crashed the worker's fetch (a 500 on every attempt).
    with pytest.raises(ValidationError):
        GenerationRequest(prompt="x", images=[f"https://example.com:{port}/a.png"])
    with pytest.raises(ValidationError):
        GenerationRequest(prompt="x", webhook_url=f"https://example.com:{port}/hook")


def test_a_url_the_fetcher_cannot_split_fails_the_input_not_the_worker():
    from lote.jobs import inputs

    with pytest.raises(inputs.InputError) as refused:
        inputs.fetch("https://example.com:99999/a.png", inputs.FetchPolicy())
    assert refused.value.code == "input_invalid_uri" and not refused.value.retryable
