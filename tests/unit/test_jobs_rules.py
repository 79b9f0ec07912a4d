"""Pure rules of the job path: address classes, image checks, last attempt, presets, idempotency."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from lote import images, timeutil
from lote.errors import InvalidRequest
from lote.idempotency import Key
from lote.jobs.attempts import is_last_attempt
from lote.netguard import is_public
from lote.quality import presets
from lote.services import Services
from lote.settings import Settings


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
     ("172.16.0.1", False), ("192.168.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
     ("0.0.0.0", False), ("::1", False), ("fe80::1", False), ("fd00::1", False), ("::ffff:10.0.0.1", False),
     ("::ffff:8.8.8.8", True), ("224.0.0.1", False)],
)  # fmt: skip
def test_only_public_unicast_addresses_are_fetched(address: str, public: bool):
    assert is_public(ipaddress.ip_address(address)) is public


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    # A few bytes of pixel data that would inflate to gigabytes if anyone decoded them.
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_before_decoding():
    with pytest.raises(images.InvalidImage) as caught:
        images.inspect(_png_header_only(50_000, 50_000))
    assert caught.value.code == "input_too_large"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_accepted_formats(fmt: str):
    out = io.BytesIO()
    Image.new("RGB", (12, 7)).save(out, format=fmt)
    info = images.inspect(out.getvalue())
    assert (info.width, info.height) == (12, 7)


def test_garbage_and_truncated_images_are_refused():
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, format="PNG")
    for data in (b"hello", out.getvalue()[:60]):
        with pytest.raises(images.InvalidImage) as caught:
            images.inspect(data)
        assert caught.value.code == "input_not_image"


def test_a_photo_is_checked_whole_without_its_full_bitmap(tmp_path: Path):
    # A 12-megapixel JPEG used to be decoded in full (36 MB per request in flight) only to prove it
    # decodes; at 1/8 scale every byte is still read, so a truncated one is refused the same.
    out = io.BytesIO()
    Image.radial_gradient("L").resize((4000, 3000)).convert("RGB").save(out, format="JPEG", quality=90)
    info = images.inspect(out.getvalue())
    assert (info.mime_type, info.width, info.height) == ("image/jpeg", 4000, 3000)
    with pytest.raises(images.InvalidImage) as caught:
        images.inspect(out.getvalue()[: out.tell() * 3 // 4])
    assert caught.value.code == "input_not_image"
    # Pillow's bitmaps are not Python allocations: measure the high-water mark of a fresh process
    # that only reads the file and checks it.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(out.getvalue())
    # (VmHWM, not ru_maxrss: Linux carries a parent's maxrss across fork and exec.)
    probe = (
        "import sys; from pathlib import Path; from lote import images\n"
        "hwm = lambda: int(next(l for l in Path('/proc/self/status').read_text().splitlines()"
        " if l.startswith('VmHWM')).split()[1])\n"
        "data = Path(sys.argv[1]).read_bytes(); before = hwm(); images.inspect(data); print(hwm() - before)"
    )
    measured = subprocess.run(
        [sys.executable, "-c", probe, photo], capture_output=True, text=True, check=True
    )
    assert int(measured.stdout) < 8_000, measured.stdout  # KiB; a full decode grows it by ~35,000


def _services(**settings: object) -> Services:
    return Services.build(Settings.model_validate(settings))


@pytest.mark.parametrize(
    ("max_attempts", "max_age", "retry_count", "age_s", "last"),
    [
        (4, 0, 2, 1, False),
        (4, 0, 3, 1, True),  # the 4th attempt of 4
        (10, 1800, 9, 60, False),  # attempts reached, age not: the queue keeps retrying
        (10, 1800, 9, 1790, True),  # within the safety margin of the age limit
        (-1, 600, 50, 100, False),
        (-1, 600, 1, 601, True),
        (-1, 0, 10_000, 10**6, False),
    ],
)
def test_last_attempt_mirrors_the_queue(max_attempts, max_age, retry_count, age_s, last):
    services = _services(generation_max_attempts=max_attempts, generation_max_retry_s=max_age)
    created = timeutil.now() - dt.timedelta(seconds=age_s)
    assert is_last_attempt(services, retry_count, {"created_at": created}) is last


def test_a_batch_retried_item_gets_the_queues_whole_window_again():
    services = _services(generation_max_attempts=10, generation_max_retry_s=1800)
    job = {"created_at": timeutil.now() - dt.timedelta(hours=2), "retried_at": timeutil.now()}
    assert is_last_attempt(services, 9, job) is False  # its new task's window has just begun
    assert is_last_attempt(services, 9, {"created_at": job["created_at"]}) is True


def test_presets_fill_defaults_and_name_bad_fields():
    prompt = presets.resolve("virtual-staging", {"style": "boho", "room_type": "bedroom"}, 1)
    assert "boho" in prompt and "bedroom" in prompt
    with pytest.raises(InvalidRequest) as caught:
        presets.resolve("virtual-staging", {"room_type": "attic"}, 1, "items.3.")
    assert caught.value.details["field"] == "items.3.params.room_type"


def test_every_preset_renders_with_its_defaults():
    for name, spec in presets.catalogue().items():
        assert presets.resolve(name, {}, spec.get("min_images", 0))


def test_idempotency_keys_are_scoped_to_the_tenant_and_the_request():
    a = Key.parse("t1", "k", "POST", "/v1/generations", {"prompt": "x", "n": 1})
    b = Key.parse("t1", "k", "POST", "/v1/generations", {"n": 1, "prompt": "x"})
    c = Key.parse("t2", "k", "POST", "/v1/generations", {"prompt": "x", "n": 1})
    assert a is not None and b is not None and c is not None
    assert a == b and a.doc_id != c.doc_id
    assert Key.parse("t1", None, "POST", "/", {}) is None
    for bad in ("", "k" * 256, "tab\there", "naïve"):
        with pytest.raises(InvalidRequest):
            Key.parse("t1", bad, "POST", "/", {})


def test_default_retry_settings_match_the_repo_queue_yaml():
    from lote_local import queue_yaml
    from lote_local.config import REPO_ROOT

    generation = next(q for q in queue_yaml.load(REPO_ROOT / "queue.yaml") if q.name == "generation")
    defaults = Settings.model_validate({})
    assert defaults.generation_max_attempts == generation.max_attempts
    assert defaults.generation_max_retry_s == generation.max_retry_duration_s


def test_a_generation_eta_is_its_attempts_start_plus_the_typical_attempt():
    from lote.jobs.views import eta

    now = dt.datetime(2026, 11, 24, 12, 0, 0, tzinfo=dt.UTC)
    lease_s = 900
    claimed = now - dt.timedelta(seconds=3)  # the claim set lease_until = claim + lease
    running = {"status": "running", "lease_until": claimed + dt.timedelta(seconds=lease_s)}
    assert eta(running, 8_000, lease_s, now) == timeutil.iso(claimed + dt.timedelta(seconds=8))
    assert eta({"status": "queued"}, 8_000, lease_s, now) == timeutil.iso(now + dt.timedelta(seconds=8))
    assert eta(running, 2_000, lease_s, now) is None  # passed: "almost done", never a time gone by
    assert eta(running, None, lease_s, now) is None  # nothing measured yet
    assert eta({"status": "queued", "hold": "lane_x"}, 8_000, lease_s, now) is None  # its batch's ETA
    assert eta({"status": "succeeded"}, 8_000, lease_s, now) is None
