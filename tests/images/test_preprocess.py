"""Decoding and the contract's preprocessing against a slow reference, and every bad
picture: real PNG/JPEG files made with Pillow, hand-built ones where Pillow will not."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.catalog.image_contract import ImageInput
from runtime.errors import ImageTooLarge, InvalidImage, UnsupportedImage
from runtime.images.decode import DecodeLimits, decode
from runtime.images.preprocess import picture_to_tensor
from tests.support.image_models import (
    cmyk_jpeg,
    decoded,
    encode,
    noise_picture,
    raw_png,
    reference_tensor,
)

CONTRACTS = {
    "rgb-stretch-bilinear": ImageInput(
        width=7, height=5, scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    ),
    "bgr-letterbox-area-nchw": ImageInput(
        width=9, height=9, color="BGR", resize="letterbox", pad=114, interpolation="area",
        layout="NCHW", scale=0.5, mean=(1.0, 2.0, 3.0),
    ),
    "gray-crop-nearest-flat-fp16": ImageInput(
        width=4, height=6, color="GRAY", resize="center_crop", interpolation="nearest",
        dtype="FP16", flatten=True, scale=1 / 255,
    ),
    "rgb-upscale-area-uint8": ImageInput(
        width=30, height=11, interpolation="area", dtype="UINT8"
    ),
    "gray-crop-bilinear-wide": ImageInput(
        width=12, height=3, color="GRAY", resize="center_crop", layout="NCHW"
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CONTRACTS))
@pytest.mark.parametrize("size", [(13, 17), (20, 9)])
def test_png_equals_the_reference_preprocessing(name: str, size: tuple[int, int]) -> None:
    contract = CONTRACTS[name]
    data = encode(noise_picture(*size, seed=len(name)))
    got = picture_to_tensor(data, contract)
    want = reference_tensor(data, contract)
    assert got.shape == want.shape
    assert got.dtype == {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8}[contract.dtype]
    tol = 2e-3 if contract.dtype == "FP16" else 1e-4
    # UINT8 rounds: a value at .5 in float64 may sit a hair either side of it in float32.
    atol = 1.0 if contract.dtype == "UINT8" else tol * 10
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=atol)


def test_grey_png_grey_jpeg_and_rgba_png_are_taken() -> None:
    c = CONTRACTS["rgb-stretch-bilinear"]
    grey = encode(noise_picture(10, 10, gray=True))
    grey_jpeg = encode(noise_picture(10, 10, gray=True), "JPEG")
    rgba = encode(np.dstack([noise_picture(10, 10), np.full((10, 10), 7, np.uint8)]))
    for data in (grey, grey_jpeg, rgba):
        np.testing.assert_allclose(picture_to_tensor(data, c), reference_tensor(data, c), atol=1e-4)


def test_small_jpeg_equals_the_reference() -> None:
    # Under twice the target size the decoder cannot shrink in the DCT: exact equality.
    c = CONTRACTS["rgb-stretch-bilinear"]
    data = encode(noise_picture(9, 13), "JPEG")
    np.testing.assert_allclose(picture_to_tensor(data, c), reference_tensor(data, c), atol=1e-4)


def test_large_jpeg_decoded_small_stays_close_to_the_full_decode() -> None:
    # A 640x480 frame for an 8x8 model decodes at 1/8 scale; the DCT's block average is
    # the area average the contract asks for, up to JPEG rounding.
    c = ImageInput(width=8, height=8, color="GRAY", interpolation="area")
    smooth = np.kron(noise_picture(6, 8, gray=True), np.ones((80, 80))).astype(np.uint8)
    data = encode(smooth, "JPEG", quality=95)
    got = picture_to_tensor(data, c)
    full = decoded(data, gray=True)[:, :, 0]  # 480 x 640, boxes of 60 x 80 exactly
    want = full.reshape(8, 60, 8, 80).mean(axis=(1, 3))[:, :, None]
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 2.0  # grey levels out of 255


def test_base64_is_taken_as_kserve_json_sends_bytes() -> None:
    c = CONTRACTS["rgb-stretch-bilinear"]
    data = encode(noise_picture(8, 8))
    np.testing.assert_array_equal(
        picture_to_tensor(base64.b64encode(data), c), picture_to_tensor(data, c)
    )


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"hello, not a picture", InvalidImage, "not a JPEG or PNG"),
        (b"", InvalidImage, "empty"),
        (encode(noise_picture(40, 40))[:300], InvalidImage, "truncated or corrupt"),
        (encode(noise_picture(40, 40), "JPEG")[:400], InvalidImage, "JPEG header is corrupt"),
        (encode(noise_picture(40, 40), "JPEG")[:-300], InvalidImage, "truncated or corrupt"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, InvalidImage, "PNG"),
        (cmyk_jpeg(), UnsupportedImage, "CMYK"),
        (raw_png(4, 4, bit_depth=16, color_type=0), UnsupportedImage, "16-bit"),
        (raw_png(4, 4, bit_depth=16, color_type=2), UnsupportedImage, "16-bit"),
        (raw_png(20_000, 20_000, rows=2), ImageTooLarge, "400000000 pixels"),
    ],
    ids=[
        "text",
        "empty",
        "png-cut",
        "jpeg-cut-header",
        "jpeg-cut-data",
        "png-garbage",
        "cmyk",
        "grey16",
        "rgb16",
        "bomb",
    ],
)
def test_bad_pictures_have_clear_codes(data: bytes, error: type[InvalidImage], words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        picture_to_tensor(data, CONTRACTS["rgb-stretch-bilinear"])
    assert caught.value.code in ("invalid_image", "unsupported_image", "image_too_large")
    assert caught.type is error


def test_pixel_limit_is_exact() -> None:
    limits = DecodeLimits(max_pixels=100)
    assert decode(encode(noise_picture(10, 10)), gray=False, limits=limits).shape == (10, 10, 3)
    with pytest.raises(ImageTooLarge, match="110 pixels is over the 100-pixel limit"):
        decode(encode(noise_picture(11, 10)), gray=False, limits=limits)


BOMB_PROBE = """
import resource, sys
from runtime.errors import ImageTooLarge
from runtime.images.decode import decode
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    decode(data, gray=False)
except ImageTooLarge as e:
    print("refused", e.code)
else:
    print("refused", "no")
print("grew_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_a_bomb_is_refused_without_allocating_it(tmp_path: Path) -> None:
    # 7000 x 7000 RGB: 147 MB of pixels from a file of under 1 MB. Pillow's own bomb
    # check only warns at this size; the 40-megapixel limit must refuse it from the header.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(raw_png(7000, 7000, color_type=2))
    assert bomb.stat().st_size < 1_000_000
    out = subprocess.run(
        [sys.executable, "-c", BOMB_PROBE, str(bomb)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["refused"] == "image_too_large"
    assert int(lines["grew_kib"]) < 30 * 1024  # far below the 147 MB a decode would take


@pytest.mark.parametrize("interpolation", ["area", "bilinear"])
def test_a_large_picture_within_the_limit_stays_near_its_decoded_size(interpolation: str) -> None:
    # 36 megapixels of grey: 36 MB decoded. Converting the whole frame to float before
    # resizing (or float64 sums over all of it) would add 144 to 288 MB. tracemalloc sees
    # every numpy and Python allocation (not Pillow's own decode buffer), deterministically.
    import tracemalloc

    data = raw_png(6000, 6000)
    contract = ImageInput(width=8, height=8, color="GRAY", interpolation=interpolation)
    tracemalloc.start()
    try:
        assert picture_to_tensor(data, contract).shape == (8, 8, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 36_000_000, f"{peak / 1e6:.0f} MB at the peak"
