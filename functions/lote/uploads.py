"""Signed upload URLs: partners put inputs and manifests straight into the input bucket."""

from __future__ import annotations

import datetime as dt

from lote import ids, timeutil
from lote.batches.schemas import UploadAnswer, UploadRequest
from lote.jobs.service import tenant_upload_prefix
from lote.services import Services
from lote.tenants.service import Caller

UPLOAD_TTL = dt.timedelta(minutes=15)


def create(services: Services, caller: Caller, req: UploadRequest) -> UploadAnswer:
    """A V4 PUT URL with the content type and the size range bound into its signature."""
    bucket = services.settings.input_bucket
    # Named by its content when the caller gives its hash: the same bytes get the same URI.
    upload_id = f"sha256-{req.sha256}" if req.sha256 else ids.new_id("upl")
    name = f"{tenant_upload_prefix(caller.tenant_id)}{upload_id}/{req.filename or 'upload'}"
    headers = {"Content-Type": req.content_type, "x-goog-content-length-range": f"0,{req.max_bytes}"}
    url = services.storage.signed_url(
        bucket, name, UPLOAD_TTL, method="PUT", content_type=req.content_type,
        headers={"x-goog-content-length-range": headers["x-goog-content-length-range"]},
    )  # fmt: skip
    return UploadAnswer(
        upload_url=url,
        method="PUT",
        headers=headers,
        gs_uri=f"gs://{bucket}/{name}",
        expires_at=timeutil.iso(timeutil.now() + UPLOAD_TTL) or "",
    )
