"""Shared request types: what may reach Firestore or Cloud Storage is decided here, once.

Every request model derives from `RequestModel` (strict: no `true` for 1, no "1" for 1; unknown
fields refused), and every map a client chooses the keys of is a `Metadata` or `Params`, whose keys
can never be a Firestore-reserved (`__x__`) or empty field name. The OpenAPI document is generated
from these same types, so what the contract promises is what is enforced.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from lote.netguard import is_public

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
PARAM_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_METADATA_PAIRS = 16
MAX_METADATA_VALUE = 512
MAX_PARAMS = 16
MAX_PARAM_VALUE = 200


class RequestModel(BaseModel):
    """Base of every request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


MetadataKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(max_length=MAX_METADATA_PAIRS),
    WithJsonSchema({
        "type": "object",
        "maxProperties": MAX_METADATA_PAIRS,
        "propertyNames": {"type": "string", "pattern": KEY_PATTERN},
        "additionalProperties": {"type": "string", "maxLength": MAX_METADATA_VALUE},
        "description": f"Up to {MAX_METADATA_PAIRS} string pairs, echoed back. Keys: 1-64 letters, digits, "
        "`_ . : -`, starting with a letter or digit; values up to 512 characters.",
    }),
]  # fmt: skip
ParamKey = Annotated[str, StringConstraints(pattern=PARAM_PATTERN)]
ParamValue = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PARAM_VALUE)]
Params = Annotated[
    dict[ParamKey, ParamValue],
    Field(max_length=MAX_PARAMS),
    WithJsonSchema({
        "type": "object",
        "maxProperties": MAX_PARAMS,
        "propertyNames": {"type": "string", "pattern": PARAM_PATTERN},
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": MAX_PARAM_VALUE},
        "description": "The preset's parameters (see GET /v1/presets for names and choices).",
    }),
]  # fmt: skip


def literal_host_refusal(url: str) -> str | None:
    """Why an http(s) URL whose host is a literal IP may never be fetched (None when it may be).

    Host names are resolved, and refused, when they are fetched; a literal private, loopback,
    link-local or metadata address can be refused at submission already.
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return "is not a valid URL"
    if not host:
        return "has no host"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not is_public(ip):
        return f"points at a non-public address ({ip})"
    return None


def has_lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string that is not valid Unicode (a lone surrogate escape
    such as "\\ud800" parses in Python but cannot be stored or sent on)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
