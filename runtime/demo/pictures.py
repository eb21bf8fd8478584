"""Pictures for the demo: the digits set rendered as a camera would see a stamped label.

Each 8x8 digit (ink 0..16) becomes dark ink on light paper, enlarged by a whole factor (4
to 12: 32 to 96 pixels a side), with sensor noise, saved as PNG and JPEG. The package's
image contract (``IMAGE_CONTRACT``) undoes exactly that: grey, an area resize back to 8x8,
and ``16 - pixel * 16 / 255`` (scale -16/255, mean -16) so ink is 16 and paper 0 again,
flattened to the 64 values the model takes.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from runtime.catalog.image_contract import ImageInput
from runtime.demo.data import N_CLASSES, PIXEL_MAX, load_split

IMAGE_CONTRACT = ImageInput(
    width=8,
    height=8,
    color="GRAY",
    resize="stretch",
    interpolation="area",
    scale=-PIXEL_MAX / 255.0,
    mean=(-PIXEL_MAX,),
    flatten=True,
)
LABELS = tuple(str(d) for d in range(N_CLASSES))
SCALES = range(4, 13)
NOISE_SIGMA = 6.0  # grey levels of sensor noise
README_DIGIT = 7  # digit.png, the picture the README sends


def render(pixels: np.ndarray, scale: int, rng: np.random.Generator) -> np.ndarray:
    """One digit (64 values 0..16) as uint8 [8*scale, 8*scale] grey: dark ink, light paper."""
    paper = 255.0 - np.asarray(pixels, dtype=np.float64).reshape(8, 8) * (255.0 / PIXEL_MAX)
    big = np.kron(paper, np.ones((scale, scale)))
    noisy = big + rng.normal(0.0, NOISE_SIGMA, big.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def encode(picture: np.ndarray, fmt: str) -> bytes:
    """PNG (lossless) or JPEG (quality 90) bytes of a grey uint8 picture."""
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(picture, mode="L")
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def rendered_split(seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Every held-out digit rendered at a seeded scale with seeded noise, and the labels."""
    split = load_split(seed)
    rng = np.random.default_rng(seed)
    pictures = [render(p, int(rng.choice(list(SCALES))), rng) for p in split.test_pixels]
    return pictures, split.test_labels


def write_pictures(directory: Path, seed: int = 0) -> list[Path]:
    """``digit-<d>.png`` and ``digit-<d>.jpg`` for each digit (the first held-out one of
    each), and ``digit.png``, a 7, into ``directory``; returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pictures, labels = rendered_split(seed)
    written = []
    for digit in range(N_CLASSES):
        first = int(np.flatnonzero(labels == digit)[0])
        for fmt, ext in (("PNG", "png"), ("JPEG", "jpg")):
            path = directory / f"digit-{digit}.{ext}"
            path.write_bytes(encode(pictures[first], fmt))
            written.append(path)
    readme = directory / "digit.png"
    readme.write_bytes((directory / f"digit-{README_DIGIT}.png").read_bytes())
    written.append(readme)
    return written
