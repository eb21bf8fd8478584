"""JPEG decode + resize per frame: Pillow against simplejpeg (libjpeg-turbo) and OpenCV
headless, 1080p and 640x480 frames, to a 224x224 RGB tensor and to the demo's 8x8 grey.

Baseline (ratio 1.00): Pillow decoding the whole frame, then the resize in numpy
(runtime.images.preprocess.resize). Each candidate decodes the same JPEG bytes; "scaled"
rows let the decoder shrink in the DCT first (Pillow's draft, simplejpeg's min_width/
min_height, OpenCV's IMREAD_REDUCED_*), which is what a big frame for a small model wants.
The ``headframe`` row is the runtime's own path (runtime.images.preprocess.picture_to_tensor:
Pillow with draft, then the contract in numpy). Rounds are interleaved (every candidate
once per round) and the median is reported beside the load average.

    .venv/bin/python bench/image_decode_bench.py [--rounds 30] [--json]

simplejpeg and OpenCV are optional (pip install 'headframe[imagebench]'); a missing one
is a row saying so.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.catalog.image_contract import ImageInput  # noqa: E402
from runtime.images.preprocess import picture_to_tensor, resize  # noqa: E402

FRAMES = {"1080p": (1080, 1920), "640x480": (480, 640)}
TARGETS = {
    "224 RGB": ImageInput(width=224, height=224, scale=1 / 255),
    "8x8 grey": ImageInput(width=8, height=8, color="GRAY", interpolation="area"),
}
Candidate = Callable[[bytes, ImageInput], np.ndarray]


def camera_frame(h: int, w: int, seed: int = 0) -> bytes:
    """A JPEG (quality 85) that compresses like a camera frame: smooth shapes plus noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 40 + 2, w // 40 + 2, 3)).astype(np.float32)
    smooth = resize(coarse, h, w, "bilinear")
    frame = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _finish(pixels: np.ndarray, c: ImageInput) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return resize(pixels.astype(np.float32), c.height, c.width, c.interpolation)


def pillow_full(data: bytes, c: ImageInput) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img = img.convert("L" if c.color == "GRAY" else "RGB")
    return _finish(np.asarray(img), c)


def pillow_scaled(data: bytes, c: ImageInput) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    mode = "L" if c.color == "GRAY" else "RGB"
    img.draft(mode, (c.width, c.height))
    return _finish(np.asarray(img.convert(mode)), c)


def headframe(data: bytes, c: ImageInput) -> np.ndarray:
    return picture_to_tensor(data, c)


def simplejpeg_full(data: bytes, c: ImageInput) -> np.ndarray:
    import simplejpeg

    return _finish(
        simplejpeg.decode_jpeg(data, colorspace="GRAY" if c.color == "GRAY" else "RGB"), c
    )


def simplejpeg_scaled(data: bytes, c: ImageInput) -> np.ndarray:
    import simplejpeg

    space = "GRAY" if c.color == "GRAY" else "RGB"
    pixels = simplejpeg.decode_jpeg(data, colorspace=space, min_width=c.width, min_height=c.height)
    return _finish(pixels, c)


def _cv2_decode(data: bytes, c: ImageInput, reduce: int) -> np.ndarray:
    import cv2

    gray = c.color == "GRAY"
    flags = {1: cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR}
    flags[2] = cv2.IMREAD_REDUCED_GRAYSCALE_2 if gray else cv2.IMREAD_REDUCED_COLOR_2
    flags[4] = cv2.IMREAD_REDUCED_GRAYSCALE_4 if gray else cv2.IMREAD_REDUCED_COLOR_4
    flags[8] = cv2.IMREAD_REDUCED_GRAYSCALE_8 if gray else cv2.IMREAD_REDUCED_COLOR_8
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags[reduce])
    if not gray:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    interp = cv2.INTER_AREA if c.interpolation == "area" else cv2.INTER_LINEAR
    out = cv2.resize(pixels, (c.width, c.height), interpolation=interp)
    return out.astype(np.float32)


def opencv_full(data: bytes, c: ImageInput) -> np.ndarray:
    return _cv2_decode(data, c, 1)


def opencv_scaled(data: bytes, c: ImageInput) -> np.ndarray:
    from PIL import Image

    w, h = Image.open(io.BytesIO(data)).size  # header only: which reduction still fits
    reduce = max([r for r in (1, 2, 4, 8) if w // r >= c.width and h // r >= c.height])
    return _cv2_decode(data, c, reduce)


CANDIDATES: dict[str, tuple[str, Candidate]] = {
    "pillow (baseline)": ("PIL", pillow_full),
    "pillow scaled": ("PIL", pillow_scaled),
    "headframe (pillow scaled + contract)": ("PIL", headframe),
    "simplejpeg": ("simplejpeg", simplejpeg_full),
    "simplejpeg scaled": ("simplejpeg", simplejpeg_scaled),
    "opencv": ("cv2", opencv_full),
    "opencv scaled": ("cv2", opencv_scaled),
}


def _available(module: str) -> str | None:
    try:
        __import__(module)
    except ImportError as e:
        return f"not installed ({e.name}): pip install 'headframe[imagebench]'"
    return None


def bench(rounds: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for frame_name, (h, w) in FRAMES.items():
        data = camera_frame(h, w)
        for target_name, contract in TARGETS.items():
            live = {n: fn for n, (mod, fn) in CANDIDATES.items() if _available(mod) is None}
            samples: dict[str, list[float]] = {n: [] for n in live}
            for fn in live.values():
                fn(data, contract)  # warm-up
            for _ in range(rounds):
                for name, fn in live.items():
                    t0 = time.perf_counter()
                    fn(data, contract)
                    samples[name].append(time.perf_counter() - t0)
            base = statistics.median(samples["pillow (baseline)"])
            for name, (module, _) in CANDIDATES.items():
                row: dict[str, Any] = {
                    "frame": frame_name, "jpeg_bytes": len(data), "target": target_name,
                    "decoder": name, "loadavg_1m": round(os.getloadavg()[0], 2),
                }  # fmt: skip
                missing = _available(module)
                if missing:
                    row["missing"] = missing
                else:
                    med = statistics.median(samples[name])
                    row["median_ms"] = round(med * 1000, 3)
                    row["ratio_vs_pillow"] = round(med / base, 3)
                rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = bench(args.rounds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'frame':8} {'target':9} {'decoder':38} {'median ms':>10} {'ratio':>6}  load")
    for r in rows:
        if "missing" in r:
            print(f"{r['frame']:8} {r['target']:9} {r['decoder']:38} {r['missing']}")
            continue
        print(
            f"{r['frame']:8} {r['target']:9} {r['decoder']:38} {r['median_ms']:>10.3f} "
            f"{r['ratio_vs_pillow']:>6.2f}  {r['loadavg_1m']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
