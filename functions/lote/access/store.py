"""Client token records (`client_tokens/{tok_…}`): read on every use, so a revocation or a spent
image cap takes effect at once; the signature alone cannot be recalled."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from lote.errors import Forbidden

if TYPE_CHECKING:
    from google.cloud import firestore

COLLECTION = "client_tokens"


class ImageCapReached(Forbidden):
    """The token's `max_images` would be exceeded."""

    code = "token_image_cap_reached"


def ref(db: firestore.Client, token_id: str) -> firestore.DocumentReference:
    """The token's document."""
    return db.collection(COLLECTION).document(token_id)


def document(tenant_id: str, key_id: str, subject: str, scopes: list[str], max_images: int | None,
             now: dt.datetime, expires_at: dt.datetime) -> dict[str, Any]:  # fmt: skip
    """A new token's record; `expires_at` also drives its TTL deletion."""
    return {"tenant_id": tenant_id, "minted_by": key_id, "subject": subject, "scopes": sorted(scopes),
            "max_images": max_images, "images": 0, "created_at": now, "expires_at": expires_at,
            "revoked_at": None}  # fmt: skip


def charge(batch: firestore.WriteBatch, db: firestore.Client, token_id: str, images: int) -> None:
    """Into the commit that accepts `images` images: count them against the token's cap (403 and
    nothing written beyond it). The update-time precondition serializes racing submissions."""
    snapshot = ref(db, token_id).get()
    doc = snapshot.to_dict() or {}
    cap, used = doc.get("max_images"), int(doc.get("images") or 0)
    if cap is not None and used + images > int(cap):
        raise ImageCapReached(
            f"this token may submit {cap} images and has submitted {used}",
            {"max_images": cap, "images": used, "requested": images},
        )
    batch.update(snapshot.reference, {"images": used + images},
                 option=db.write_option(last_update_time=snapshot.update_time))  # fmt: skip
