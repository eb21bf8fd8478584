"""JPEG and PNG bytes to 8-bit pixels, with the pixel count bounded before decoding.

Pillow decodes (bench/image_decode_bench.py measured it against simplejpeg and OpenCV;
bench/README.md "Images" says why it won: it reads both formats, it tells the size from
the header alone, and its JPEG ``draft`` decodes at 1/2, 1/4 or 1/8 scale in the DCT, which
is where a large frame for a small model saves most). Only the JPEG and PNG plugins are
ever asked to open the bytes, so no other Pillow decoder sees client input.

Every failure is an InvalidImage subclass with a stable code: ``invalid_image`` (not a
picture, truncated, corrupt), ``unsupported_image`` (CMYK, 16 bits per sample),
``image_too_large`` (more pixels than ``max_pixels``: refused from the header, before any
pixel is allocated), and ``unsupported_image`` too for an aspect ratio past ``max_aspect``
(refused from the header).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from runtime.errors import ImageTooLarge, InvalidImage, UnsupportedImage

# 40 megapixels: an 8K frame (33 MP) fits; a decoded RGB picture stays under 120 MB.
DEFAULT_MAX_PIXELS = 40_000_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
# Pillow modes the contract can take as they are or by a lossless conversion.
_ACCEPTED_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX"}


@dataclass(frozen=True)
class DecodeLimits:
    """What one picture, and one request's pictures, may cost."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    # Wider than this (or taller) is not a camera frame: a picture a pixel tall and
    # 400,000 wide passes the pixel limit and resizes to nothing useful.
    max_aspect: int = 100
    max_pictures: int = 64  # per request
    max_decode_s: float = 10.0  # decoding and preprocessing, per request


def sniff(data: bytes) -> str | None:
    """ "JPEG", "PNG" or None, from the first bytes."""
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    return None


def picture_bytes(data: bytes) -> tuple[bytes, str]:
    """(raw bytes, format) of a JPEG or PNG sent as it is or base64-encoded (KServe JSON
    carries BYTES as strings, so a picture in plain JSON arrives as base64)."""
    fmt = sniff(data)
    if fmt is not None:
        return data, fmt
    if not data:
        raise InvalidImage("empty picture: send JPEG or PNG bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    fmt = sniff(raw)
    if fmt is None:
        head = data[:8].hex(" ")
        raise InvalidImage(f"not a JPEG or PNG picture, nor base64 of one (starts {head})")
    return raw, fmt


def _png_check(raw: bytes) -> None:
    # IHDR is always the first chunk: width, height, then bit depth at byte 24. Pillow
    # quietly narrows 16-bit RGB to 8 bits; the contract says 8, so refuse instead.
    if len(raw) >= 26 and raw[12:16] == b"IHDR" and raw[24] == 16:
        raise UnsupportedImage("16-bit PNG: send 8 bits per sample")


def decode(
    data: bytes,
    *,
    gray: bool,
    draft: Callable[[int, int], tuple[int, int]] | None = None,
    limits: DecodeLimits = DecodeLimits(),
) -> np.ndarray:
    """Pixels as uint8 [height, width, channels] (1 for ``gray``, else 3 in RGB order).

    ``draft(width, height)`` gives the least size the caller needs from a picture of that
    size: a JPEG then decodes at the smallest DCT scale that is still at least that big.
    PNGs always decode at full size."""
    from PIL import Image, UnidentifiedImageError

    raw, fmt = picture_bytes(data)
    if fmt == "PNG":
        _png_check(raw)
    try:
        img = Image.open(io.BytesIO(raw), formats=[fmt])  # reads the header only
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"{fmt} header claims too many pixels: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InvalidImage(f"{fmt} header is corrupt: {e}") from None
    w, h = img.size
    if w * h > limits.max_pixels:
        raise ImageTooLarge(
            f"{fmt} of {w}x{h} = {w * h} pixels is over the {limits.max_pixels}-pixel limit"
        )
    if max(w, h) > limits.max_aspect * max(1, min(w, h)):
        raise UnsupportedImage(
            f"{fmt} of {w}x{h} has an aspect ratio of {max(w, h) / max(1, min(w, h)):.0f}:1, "
            f"over the {limits.max_aspect}:1 limit: send a camera frame, not a strip"
        )
    if img.mode not in _ACCEPTED_MODES:
        what = {"CMYK": "CMYK"}.get(img.mode, f"mode {img.mode}")
        bits = " (16 bits per sample)" if img.mode.startswith("I") else ""
        raise UnsupportedImage(f"{fmt} in {what}{bits}: send 8-bit RGB or greyscale")
    want = "L" if gray else "RGB"
    if fmt == "JPEG" and draft is not None:
        img.draft(want, draft(w, h))
    try:
        img.load()
    except MemoryError:
        raise  # the box is short of memory, the picture is fine (preprocess.py says so)
    except Exception as e:  # truncated data, bad CRC, zlib or Huffman errors
        raise InvalidImage(f"{fmt} is truncated or corrupt: {e}") from None
    pixels = np.asarray(img if img.mode == want else img.convert(want), dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels
