"""Client tokens (access/tokens.py, pure): what verifies, and the named 401 for what does not."""

from __future__ import annotations

import datetime as dt
from typing import get_args

import jwt
import pytest

from lote.access import tokens
from lote.access.schemas import Scope, ScopeName

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
API = "https://api.example.com"
KEYS = {"k2": "n" * 40, "k1": "o" * 40}
CLAIMS = tokens.Claims("tok_abcdefgh12", "ten_abcdefgh12", "user-1", frozenset({"generations:read"}),
                       NOW + dt.timedelta(minutes=15))  # fmt: skip


def test_a_token_verifies_with_its_claims_and_names_its_key():
    token = tokens.sign(KEYS, CLAIMS, API, NOW)
    assert (
        tokens.looks_like_token(token) and jwt.get_unverified_header(token)["kid"] == "k2"
    )  # the first signs
    assert tokens.verify(KEYS, token, API, NOW + dt.timedelta(minutes=14)) == CLAIMS


def test_an_old_key_still_verifies_what_it_signed_until_it_is_dropped():
    old = tokens.sign({"k1": KEYS["k1"]}, CLAIMS, API, NOW)
    assert tokens.verify(KEYS, old, API, NOW).subject == "user-1"
    with pytest.raises(tokens.TokenInvalid):
        tokens.verify({"k2": KEYS["k2"]}, old, API, NOW)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: tokens.sign(KEYS, CLAIMS, API, NOW), tokens.TokenExpired),  # checked an hour later
        (lambda: tokens.sign({"k2": "x" * 40}, CLAIMS, API, NOW), tokens.TokenInvalid),  # forged
        (lambda: tokens.sign(KEYS, CLAIMS, "https://other.example.com", NOW), tokens.TokenWrongAudience),
        (lambda: "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", tokens.TokenInvalid),  # no kid, no claims
        (lambda: "eyJnot.a.token", tokens.TokenInvalid),
        (
            lambda: jwt.encode({"sub": "x"}, KEYS["k2"], algorithm="HS256", headers={"kid": "k2"}),
            tokens.TokenInvalid,
        ),
        # alg none: PyJWT refuses it because only HS256 is allowed
        (
            lambda: jwt.encode({"sub": "x"}, None, algorithm="none", headers={"kid": "k2"}),
            tokens.TokenInvalid,
        ),
    ],
)
def test_what_does_not_verify_is_a_named_401(make, error):
    with pytest.raises(error) as raised:
        tokens.verify(KEYS, make(), API, NOW + dt.timedelta(hours=1))
    assert raised.value.status == 401 and raised.value.code.startswith("token_")


def test_api_keys_are_never_mistaken_for_tokens():
    assert not tokens.looks_like_token("lote_sk_" + "a" * 40)


def test_the_request_type_spells_every_scope():
    assert set(get_args(ScopeName)) == {scope.value for scope in Scope}
