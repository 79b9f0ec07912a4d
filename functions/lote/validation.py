"""Shared request types: what may reach Firestore or Cloud Storage is decided here, once.

Every request model derives from `RequestModel` (strict: no `true` for 1, no "1" for 1; unknown
fields refused), and every map a client chooses the keys of is a `Metadata` or `Params`, whose keys
can never be a Firestore-reserved (`__x__`) or empty field name. The OpenAPI document is generated
from these same types, so what the contract promises is what is enforced.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from lote.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
PARAM_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
MAX_METADATA_PAIRS = 16
MAX_METADATA_VALUE = 512
MAX_PARAMS = 16
MAX_PARAM_VALUE = 200


class RequestModel(BaseModel):
    """Base of every request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _string_map(key: str, value: dict[str, Any], pairs: int, description: str) -> dict[str, Any]:
    """The JSON Schema of a map a client chooses the keys of: key pattern, value rule, size."""
    return {"type": "object", "maxProperties": pairs, "propertyNames": {"type": "string", "pattern": key},
            "additionalProperties": {"type": "string", **value}, "description": description}  # fmt: skip


MetadataKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(max_length=MAX_METADATA_PAIRS),
    WithJsonSchema(_string_map(
        KEY_PATTERN, {"maxLength": MAX_METADATA_VALUE}, MAX_METADATA_PAIRS,
        f"Up to {MAX_METADATA_PAIRS} string pairs, echoed back. Keys: 1-64 letters, digits, `_ . : -`, "
        "starting with a letter or digit; values up to 512 characters.",
    )),
]  # fmt: skip
ParamKey = Annotated[str, StringConstraints(pattern=PARAM_PATTERN)]
ParamValue = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PARAM_VALUE)]
Params = Annotated[
    dict[ParamKey, ParamValue],
    Field(max_length=MAX_PARAMS),
    WithJsonSchema(_string_map(
        PARAM_PATTERN, {"minLength": 1, "maxLength": MAX_PARAM_VALUE}, MAX_PARAMS,
        "The preset's parameters (see GET /v1/presets for names and choices).",
    )),
]  # fmt: skip


# "Not only whitespace", spelled so every regex engine means the same: `\S` differs between
# ECMA-262 (the JSON Schema's) and Unicode's White_Space (the server's) on characters like U+0085.
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NOT_BLANK = f"[^{WHITESPACE}]"


def _whole(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number (a JSON number, not a string or boolean)")
    return value


def whole(ge: int, le: int) -> Any:
    """A whole number within [ge, le]: JSON Schema calls 3.0 an integer, so the server does too, while
    `true` and "3" stay refused. The bounds sit on the integer itself, so the JSON Schema
    carries them as minimum and maximum (outside the validator they would be lost)."""
    return Annotated[int, Field(ge=ge, le=le), Strict(False), BeforeValidator(_whole)]


# Inputs: an https URL naming a host (its last label has a letter, so it is never an IP literal:
# those are refused at submission), a gs:// object, or a base64 data URI of an image.
HOST = r"(?:[A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{0,62}[A-Za-z][A-Za-z0-9-]{0,62}"
# A TCP port, 1-65535: urllib refuses anything else when the URL is used.
PORT = r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
HTTPS_IMAGE = rf"^https://{HOST}{PORT}(?:[/?#][!-~]*)?$"
GS_IMAGE = r"^gs://[a-z0-9][a-z0-9._-]{1,221}/[!-~]{1,1024}$"
DATA_IMAGE = r"^data:image/(?:png|jpeg|webp|gif);base64,[A-Za-z0-9+/]+={0,2}$"
_IMAGE_PATTERNS = [re.compile(p) for p in (HTTPS_IMAGE, GS_IMAGE, DATA_IMAGE)]
MAX_URL = 2048


def _image(value: str) -> str:
    if not any(p.match(value) for p in _IMAGE_PATTERNS):
        raise ValueError(
            "must be an https:// URL naming a host (not an IP address), a gs:// URL of an upload, "
            "or a data:image/(png|jpeg|webp|gif);base64 URI"
        )
    if not value.startswith("data:") and len(value) > MAX_URL:
        raise ValueError(f"URLs are limited to {MAX_URL} characters")
    return value


ImageRef = Annotated[
    str,
    AfterValidator(_image),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": HTTPS_IMAGE, "maxLength": MAX_URL},
            {"type": "string", "pattern": GS_IMAGE, "maxLength": MAX_URL},
            {"type": "string", "pattern": DATA_IMAGE},
        ],
        "description": "An https:// URL (fetched when the image is made), a gs:// URL under "
        "uploads/{your tenant}/ in the input bucket (POST /v1/uploads), or a data: URI of at most 10 MB.",
    }),
]  # fmt: skip

# Webhook receivers: the scheme and the address are checked against the deployment (https only,
# public addresses only, outside a local stack) by webhooks/urls.py; this is the shape.
WEBHOOK_URL = rf"^https?://(?:[A-Za-z0-9-]{{1,63}}\.)*[A-Za-z0-9-]{{1,63}}{PORT}(?:[/?#][!-~]*)?$"
WebhookUrl = Annotated[str, StringConstraints(pattern=WEBHOOK_URL, min_length=1, max_length=MAX_URL)]
# Where a browser goes back to (Stripe Checkout): the same shape, checked the same way.
ReturnUrl = Annotated[str, StringConstraints(pattern=WEBHOOK_URL, min_length=1, max_length=2000)]


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


def field_errors(error: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """pydantic errors as [{field, message, type}] with dotted field paths."""
    found = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        found.append({"field": prefix + path if path else prefix.rstrip(".") or "body",
                      "message": item["msg"], "type": item["type"]})  # fmt: skip
    return found


def parse(model: type[M], payload: Any) -> M:
    """Validate a payload against a model; 400 listing every invalid field."""
    if not isinstance(payload, dict):
        raise InvalidRequest("body must be a JSON object", {"field": "body"})
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        # `field` names the first problem, as every other 400 does; `errors` lists them all.
        found = field_errors(exc)
        raise InvalidRequest(
            f"{found[0]['field']}: {found[0]['message']}", {"field": found[0]["field"], "errors": found}
        ) from None
