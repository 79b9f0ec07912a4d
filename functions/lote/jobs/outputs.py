"""Where a job's image is stored: once, at a deterministic name, adopted by a second writer."""

from __future__ import annotations

from lote import ids, images, tracing
from lote.clients.model import ModelTransient
from lote.jobs.documents import JobDoc, JobOutput
from lote.services import Services

MAX_OUTPUT_BYTES = 64 * 1024 * 1024


def name_of(job_id: str, job: JobDoc, candidate: int | None = None) -> str:
    """The object's name: `outputs/{tenant}/{job}.{fmt}`, or `{job}.g{n}.{fmt}` for the n-th image
    a verified job generates (the audit maps both to the job by the name's first dot)."""
    suffix = "" if candidate is None else f".g{candidate}"
    return f"outputs/{job['tenant_id']}/{job_id}{suffix}.{job['output_format']}"


def store(
    services: Services, job_id: str, job: JobDoc, data: bytes, candidate: int | None = None
) -> tuple[JobOutput, bool]:
    """Write the output once at its deterministic name; a second writer adopts the first object.
    Returns the `output` a job records and whether this call created the object."""
    try:
        encoded, info = images.convert(data, job["output_format"])
    except (OSError, ValueError) as exc:
        raise ModelTransient("model_bad_response", f"model output is not an image: {exc}") from None
    bucket = services.settings.output_bucket
    name = name_of(job_id, job, candidate)
    with tracing.span("storage.put_output", bytes=len(encoded)):
        created = services.storage.put_once(bucket, name, encoded, info.mime_type)
    if not created:
        existing = services.storage.read(bucket, name, MAX_OUTPUT_BYTES)
        if existing is not None:
            encoded, info = existing, images.inspect(existing)
    output: JobOutput = {
        "bucket": bucket,
        "object": name,
        "mime_type": info.mime_type,
        "width": info.width,
        "height": info.height,
        "bytes": len(encoded),
        "sha256": ids.sha256_hex(encoded),
    }
    return output, created


def copy(services: Services, job_id: str, job: JobDoc, source: JobOutput) -> tuple[JobOutput, bool] | None:
    """An identical request's image (reuse/) copied under this job's name, inside Cloud Storage; with
    whether this call created it. None when the source object is gone."""
    bucket, name = services.settings.output_bucket, name_of(job_id, job)
    created = services.storage.copy_once(source["bucket"], source["object"], bucket, name)
    if created is None:
        return None
    output: JobOutput = {**source, "bucket": bucket, "object": name}
    if not created:  # an earlier attempt's object: describe what is there, not the source
        existing = services.storage.read(bucket, name, MAX_OUTPUT_BYTES)
        if existing is None:
            return None
        info = images.inspect(existing)
        output = {"bucket": bucket, "object": name, "mime_type": info.mime_type, "width": info.width,
                  "height": info.height, "bytes": len(existing),
                  "sha256": ids.sha256_hex(existing)}  # fmt: skip
    return output, created
