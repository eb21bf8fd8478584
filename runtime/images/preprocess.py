"""A decoded picture to a model's tensor, by the contract's steps, in vectorised numpy.

Each resize is separable: one pass down the rows, one across the columns, each a gather
or a difference of cumulative sums, never a Python loop over pixels; the decoded picture
stays uint8 until it is small. runtime/images/step.py runs this on the model's worker
thread, never on the event loop.
"""

from __future__ import annotations

import math

import numpy as np

from runtime.catalog.image_contract import ImageInput
from runtime.errors import ImageTooLarge
from runtime.images.decode import DecodeLimits, decode


def _along(values: np.ndarray, axis: int) -> np.ndarray:
    """``values`` shaped to broadcast along ``axis`` of a 3-D [H, W, C] array."""
    shape = [1, 1, 1]
    shape[axis] = -1
    return values.reshape(shape)


def _nearest(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    n = x.shape[axis]
    idx = np.minimum(((np.arange(m) + 0.5) * (n / m)).astype(np.intp), n - 1)
    return np.take(x, idx, axis=axis)


def _bilinear(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    # Half-pixel centres (OpenCV INTER_LINEAR, PyTorch align_corners=False). Only the rows
    # (or columns) it reads become float, never the whole picture.
    n = x.shape[axis]
    src = np.clip((np.arange(m) + 0.5) * (n / m) - 0.5, 0, n - 1)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    w = _along((src - lo).astype(np.float32), axis)
    a = np.take(x, lo, axis=axis).astype(np.float32)
    return a + (np.take(x, hi, axis=axis).astype(np.float32) - a) * w


def _area_block(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    # Each output pixel averages the source over its box [i, i+1) * n/m, fractional edges
    # included: the difference of the cumulative sum, read between samples linearly.
    n = x.shape[axis]
    csum = np.cumsum(x, axis=axis, dtype=np.float64)
    zero = np.zeros_like(np.take(csum, [0], axis=axis))
    csum = np.concatenate([zero, csum], axis=axis)  # csum[k]: sum of the first k pixels
    edges = np.arange(m + 1) * (n / m)
    whole = np.floor(edges).astype(np.intp)
    frac = _along(edges - whole, axis)
    at = np.take(csum, whole, axis=axis) + frac * np.take(x, np.minimum(whole, n - 1), axis=axis)
    box = np.diff(at, axis=axis) / (n / m)
    return box.astype(np.float32)


def _area(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    # The cumulative sums are float64: taken over a whole 40-megapixel frame they would
    # need 8 bytes a value, so they go a band of the other axis at a time (each column's
    # sums are independent of the next one's).
    other = 1 - axis
    band = max(1, _AREA_BAND_VALUES // max(1, x.shape[axis] * x.shape[2]))
    if band >= x.shape[other]:
        return _area_block(x, m, axis)
    parts = [
        _area_block(x[:, s : s + band] if other == 1 else x[s : s + band], m, axis)
        for s in range(0, x.shape[other], band)
    ]
    return np.concatenate(parts, axis=other)


_AREA_BAND_VALUES = 1 << 20


_RESIZERS = {"nearest": _nearest, "bilinear": _bilinear, "area": _area}


def resize(x: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """[H, W, C] (uint8 or float) to [height, width, C]; float32 unless nothing changed
    or the interpolation is nearest, which keep the input's dtype.

    The axis whose pass leaves the smaller intermediate goes first (height first leaves
    height x W, width first H x width), so no intermediate is larger than the geometric
    mean of the picture and the result: enlarging a 400,000 x 1 picture's height to 224
    before shrinking its width was a 1 GB float array."""
    fn = _RESIZERS[interpolation]
    h, w = x.shape[:2]
    passes = [(height, 0), (width, 1)]
    if height * w > h * width:
        passes.reverse()
    for size, axis in passes:
        if x.shape[axis] != size:
            x = fn(x, size, axis)
    return x


def _scaled_size(w: int, h: int, c: ImageInput) -> tuple[int, int]:
    """The size the whole source is resized to before padding or cropping."""
    if c.resize == "stretch":
        return c.width, c.height
    if c.resize == "letterbox":
        s = min(c.width / w, c.height / h)
        return max(1, min(c.width, round(w * s))), max(1, min(c.height, round(h * s)))
    s = max(c.width / w, c.height / h)
    return max(c.width, math.ceil(w * s)), max(c.height, math.ceil(h * s))


def _center_crop(x: np.ndarray, c: ImageInput) -> np.ndarray:
    h, w = x.shape[:2]
    target = c.width / c.height
    if w / h > target:
        keep = max(1, round(h * target))
        left = (w - keep) // 2
        return x[:, left : left + keep]
    keep = max(1, round(w / target))
    top = (h - keep) // 2
    return x[top : top + keep]


def preprocess(pixels: np.ndarray, c: ImageInput) -> np.ndarray:
    """uint8 [H, W, C] (C already the contract's channel count, RGB order) to one
    picture's tensor, without the batch axis."""
    # The picture stays uint8 until it is resized: a float copy of a whole frame would
    # be four times the decoded bytes.
    x = pixels
    if c.resize == "center_crop":
        x = resize(_center_crop(x, c), c.height, c.width, c.interpolation)
    elif c.resize == "letterbox":
        nw, nh = _scaled_size(x.shape[1], x.shape[0], c)
        inner = resize(x, nh, nw, c.interpolation)
        x = np.full((c.height, c.width, x.shape[2]), float(c.pad), dtype=np.float32)
        top, left = (c.height - nh) // 2, (c.width - nw) // 2
        x[top : top + nh, left : left + nw] = inner
    else:
        x = resize(x, c.height, c.width, c.interpolation)
    x = np.asarray(x, dtype=np.float32)
    if c.color == "BGR":
        x = x[:, :, ::-1]
    mean = np.asarray(c.mean, dtype=np.float32)
    std = np.asarray(c.std, dtype=np.float32)
    x = (x * np.float32(c.scale) - mean) / std
    if c.dtype == "UINT8":
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    else:
        x = x.astype(np.float16 if c.dtype == "FP16" else np.float32)
    if c.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    x = np.ascontiguousarray(x)
    return x.reshape(-1) if c.flatten else x


def picture_to_tensor(
    data: bytes, c: ImageInput, limits: DecodeLimits = DecodeLimits()
) -> np.ndarray:
    """Decode one JPEG/PNG (raw or base64) and apply the contract: one picture's tensor."""

    def draft(w: int, h: int) -> tuple[int, int]:
        # A JPEG may shrink in the DCT down to the size the resize starts from; nearest
        # neighbour needs the full picture to pick the same pixels.
        if c.interpolation == "nearest":
            return w, h
        return _scaled_size(w, h, c)

    try:
        pixels = decode(data, gray=c.color == "GRAY", draft=draft, limits=limits)
        return preprocess(pixels, c)
    except MemoryError:
        # Bounded as every intermediate is, a large picture can still find the box short
        # of memory: that is this request's size, not a fault of the server.
        raise ImageTooLarge(
            "not enough free memory to decode and preprocess this picture now: send a smaller one"
        ) from None
