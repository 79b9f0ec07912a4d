"""The Python client from start to finish, no notebook needed: one image, then a batch from the CRM file.

make dev                                  # in one shell
source .lote/local.env                    # in another: LOTE_API_URL and the demo LOTE_API_KEY
.venv/bin/python examples/quickstart.py
"""

from __future__ import annotations

from pathlib import Path

from lote_client import Batch, Lote, LoteError

HERE = Path(__file__).parent


def main() -> None:
    """Generate one image, then run the 50-row CRM batch and download its images."""
    with Lote() as lote:
        for preset in lote.presets.list():
            print(f"{preset.name}: {preset.price} credit(s), steps {' → '.join(preset.steps)}")

        image = lote.generations.create("a bright reading nook with a window seat", wait=True)
        print(f"{image.id}: {image.status} in {image.attempts} attempt(s)")
        print("saved", lote.generations.download(image, Path("nook.png")))

        batch = lote.batches.create(HERE / "crm_listings.csv", priority="standard")
        print(f"batch {batch.id}: {batch.total} items")

        def progress(now: Batch) -> None:
            c = now.counts
            print(
                f"  {now.progress:5.1f}%  {c.succeeded} ok, {c.failed} failed, {c.queued + c.running} to go"
            )

        final = lote.batches.wait(batch.id, on_progress=progress)
        report = lote.batches.download(final.id, Path("listings"), concurrency=16)
        print(
            f"{report.downloaded} images saved, {report.skipped} already there, {len(report.failed)} failed"
        )
        for item in lote.batches.iter_items(final.id, status="failed"):
            print(f"  {item.reference}: {item.error.code if item.error else '?'}")


if __name__ == "__main__":
    try:
        main()
    except LoteError as exc:  # status, code, message and details, as the API answered
        raise SystemExit(f"lote: {exc}") from exc
