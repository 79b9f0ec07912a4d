"""Proving bytes are an image we accept (Pillow, with a pixel limit against decompression bombs)."""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

MAX_INPUT_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # ~6300×6300; larger inputs are refused, not resized
MIME_BY_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
FORMAT_BY_OUTPUT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[\w.-]+)*)(?P<b64>;base64)?,", re.I
)


class InvalidImage(ValueError):
    """Bytes that are not an acceptable image; `code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ImageInfo:
    """What decoding proved about an image."""

    mime_type: str
    width: int
    height: int


def inspect(data: bytes) -> ImageInfo:
    """Decode fully enough to prove `data` is a PNG, JPEG, WebP or GIF within the pixel limit."""
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidImage("input_too_large", f"image is {len(data)} bytes; the limit is {MAX_INPUT_BYTES}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise InvalidImage("input_too_large", f"image has more than {MAX_PIXELS} pixels")
                fmt, size = image.format or "", image.size
                if fmt == "JPEG":
                    # Decoded at 1/8 scale: every byte of the stream is still read and checked (a
                    # truncated or corrupt file is refused the same), without the full bitmap (36 MB
                    # for a 12-megapixel photo, per request in flight: the worker's largest peak).
                    image.draft(image.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
                image.load()
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("input_too_large", f"image has more than {MAX_PIXELS} pixels") from None
    except UnidentifiedImageError:
        # Pillow's message names the in-memory file object (`<_io.BytesIO object at 0x…>`).
        raise InvalidImage("input_not_image", "not a PNG, JPEG, WebP or GIF image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage("input_not_image", f"not a decodable image: {exc}") from None
    if fmt not in MIME_BY_FORMAT:
        raise InvalidImage("input_unsupported_format", f"image format {fmt or 'unknown'} is not supported")
    return ImageInfo(MIME_BY_FORMAT[fmt], size[0], size[1])


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a `data:` URI (base64 only), at most MAX_INPUT_BYTES decoded."""
    match = _DATA_URI.match(uri)
    if not match or not match.group("b64"):
        raise InvalidImage("input_invalid_uri", "data URI must be `data:<mime>;base64,<data>`")
    payload = uri[match.end() :]
    if len(payload) * 3 // 4 > MAX_INPUT_BYTES + 3:
        raise InvalidImage("input_too_large", f"data URI decodes to more than {MAX_INPUT_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("input_invalid_uri", "data URI is not valid base64") from None


def convert(data: bytes, output_format: str) -> tuple[bytes, ImageInfo]:
    """Re-encode an image in the requested output format (png, jpeg, webp)."""
    target = FORMAT_BY_OUTPUT[output_format]
    with Image.open(io.BytesIO(data)) as image:
        if image.format == target:
            return data, ImageInfo(MIME_BY_FORMAT[target], image.width, image.height)
        converted = image.convert("RGB") if target == "JPEG" else image.copy()
    out = io.BytesIO()
    converted.save(out, format=target, **({"quality": 92} if target != "PNG" else {}))
    return out.getvalue(), ImageInfo(MIME_BY_FORMAT[target], converted.width, converted.height)
