"""Random, non-sequential identifiers (sequential ids hot-spot Firestore) and key hashing."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str, length: int = 20) -> str:
    """`prefix_` + random base32: 100 bits for the default length."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def derived_id(prefix: str, seed: str, length: int = 20) -> str:
    """A random-looking but reproducible id: the same seed always gives the same id.

    Seeds start with a random id (a batch's), so derived ids are as unpredictable and as
    non-sequential as new_id's, and re-running a fan-out step finds the same documents.
    """
    digest = hashlib.sha256(seed.encode()).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        chars.append(_ALPHABET[rest])
    return f"{prefix}_" + "".join(chars)


def looks_like(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of an id made by new_id(prefix)."""
    body = value.removeprefix(f"{prefix}_")
    return body != value and 8 <= len(body) <= 64 and all(c in _ALPHABET for c in body)


def sha256_hex(text: str | bytes) -> str:
    """Hex SHA-256 of text or bytes."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()
