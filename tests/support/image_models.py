"""Pictures and picture-taking packages for the image tests.

Pictures are real PNG and JPEG files made with Pillow, plus hand-built PNGs for what Pillow
will not write (16-bit RGB, a decompression bomb). ``reference_tensor`` is the contract's
preprocessing written again, independently and slowly: loops over pixels, no code shared
with runtime/images, so equality between the two means something.

Packages: ``write_picture_package`` is the linear part-id-reader model with the demo's
contract and labels; ``write_camera_package`` an Identity model on an NCHW RGB input, so
the tensor a picture became comes back as the output.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from runtime.catalog import ModelPackage, load_package
from runtime.catalog.image_contract import ImageInput
from tests.support.serving_models import _save, _write_variant, write_linear_package

DEMO_CONTRACT_TOML = """
[images.pixels]
width = 8
height = 8
color = "GRAY"
resize = "stretch"
interpolation = "area"
scale = -0.06274509803921569
mean = [-16.0]
std = [1.0]
flatten = true

[labels]
probabilities = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
"""
LABELS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CAMERA = ImageInput(
    width=6, height=4, color="BGR", layout="NCHW", resize="letterbox", pad=114,
    interpolation="bilinear", scale=1 / 255, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3),
)  # fmt: skip


# --- pictures ---------------------------------------------------------------------------


def encode(pixels: np.ndarray, fmt: str = "PNG", quality: int = 90) -> bytes:
    """PNG or JPEG bytes of uint8 [H, W] (grey) or [H, W, 3] (RGB) pixels."""
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    img.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def noise_picture(h: int, w: int, *, seed: int = 0, gray: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w) if gray else (h, w, 3)).astype(np.uint8)


def digit_picture(digit_pixels: np.ndarray, scale: int = 6) -> bytes:
    """An 8x8 digit (0..16) as a grey PNG: dark ink on light paper, ``scale`` times bigger."""
    paper = 255 - np.rint(np.asarray(digit_pixels, float).reshape(8, 8) * 255 / 16)
    return encode(np.kron(paper, np.ones((scale, scale))).astype(np.uint8))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, *, bit_depth: int = 8, color_type: int = 0,
            rows: int | None = None) -> bytes:  # fmt: skip
    """A PNG built by hand: zero pixels, ``rows`` rows of data (all by default). Pillow
    will not write 16-bit RGB; a bomb needs a header far bigger than its data."""
    channels = {0: 1, 2: 3}[color_type]
    row = b"\x00" + bytes(width * channels * bit_depth // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height if rows is None else rows))
    data += z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    )


def cmyk_jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(buf, format="JPEG")
    return buf.getvalue()


def decoded(data: bytes, gray: bool) -> np.ndarray:
    """Pillow's full-size decode as float [H, W, C], the reference's starting point."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img = img.convert("L" if gray else "RGB")
    arr = np.asarray(img, dtype=np.float64)
    return arr[:, :, None] if arr.ndim == 2 else arr


# --- the reference preprocessing (slow on purpose) -------------------------------------


def _ref_resize(img: np.ndarray, out_h: int, out_w: int, how: str) -> np.ndarray:
    h, w, c = img.shape
    out = np.zeros((out_h, out_w, c))
    for i in range(out_h):
        for j in range(out_w):
            if how == "nearest":
                y = min(int((i + 0.5) * h / out_h), h - 1)
                x = min(int((j + 0.5) * w / out_w), w - 1)
                out[i, j] = img[y, x]
            elif how == "bilinear":
                sy = min(max((i + 0.5) * h / out_h - 0.5, 0.0), h - 1)
                sx = min(max((j + 0.5) * w / out_w - 0.5, 0.0), w - 1)
                y0, x0 = math.floor(sy), math.floor(sx)
                y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
                fy, fx = sy - y0, sx - x0
                top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
                bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
                out[i, j] = top * (1 - fy) + bottom * fy
            else:  # area: the overlap of every source pixel with the output's box
                b0y, b1y = i * h / out_h, (i + 1) * h / out_h
                b0x, b1x = j * w / out_w, (j + 1) * w / out_w
                total = np.zeros(c)
                for y in range(h):
                    oy = max(0.0, min(y + 1, b1y) - max(y, b0y))
                    if oy == 0:
                        continue
                    for x in range(w):
                        ox = max(0.0, min(x + 1, b1x) - max(x, b0x))
                        total += img[y, x] * oy * ox
                out[i, j] = total / ((b1y - b0y) * (b1x - b0x))
    return out


def reference_tensor(data: bytes, c: ImageInput) -> np.ndarray:
    """What the contract says ``data`` becomes (one picture, no batch axis)."""
    img = decoded(data, c.color == "GRAY")
    h, w = img.shape[:2]
    if c.resize == "stretch":
        img = _ref_resize(img, c.height, c.width, c.interpolation)
    elif c.resize == "center_crop":
        ratio = c.width / c.height
        if w / h > ratio:
            keep = max(1, round(h * ratio))
            img = img[:, (w - keep) // 2 : (w - keep) // 2 + keep]
        else:
            keep = max(1, round(w / ratio))
            img = img[(h - keep) // 2 : (h - keep) // 2 + keep]
        img = _ref_resize(img, c.height, c.width, c.interpolation)
    else:
        s = min(c.width / w, c.height / h)
        nw = max(1, min(c.width, round(w * s)))
        nh = max(1, min(c.height, round(h * s)))
        canvas = np.full((c.height, c.width, img.shape[2]), float(c.pad))
        top, left = (c.height - nh) // 2, (c.width - nw) // 2
        canvas[top : top + nh, left : left + nw] = _ref_resize(img, nh, nw, c.interpolation)
        img = canvas
    if c.color == "BGR":
        img = img[:, :, ::-1]
    img = (img * c.scale - np.array(c.mean)) / np.array(c.std)
    if c.dtype == "UINT8":
        img = np.clip(np.rint(img), 0, 255)
    if c.layout == "NCHW":
        img = img.transpose(2, 0, 1)
    return img.reshape(-1) if c.flatten else img


# --- packages ---------------------------------------------------------------------------


def _with_schema_2(pdir: Path, extra: str) -> ModelPackage:
    toml = pdir / "package.toml"
    toml.write_text("schema_version = 2\n" + toml.read_text() + extra)
    return load_package(pdir)


def write_picture_package(store: Path, app: str = "part-id-reader") -> ModelPackage:
    """The linear [-1, 64] -> [-1, 10] model with the demo's contract and ten labels."""
    write_linear_package(store, app=app, variants=("small",))
    return _with_schema_2(store / app / "1.0.0", DEMO_CONTRACT_TOML)


def camera_contract_toml(c: ImageInput = CAMERA, name: str = "image") -> str:
    fields = c.model_dump()
    lines = [f"\n[images.{name}]"]
    for k, v in fields.items():
        value = f'"{v}"' if isinstance(v, str) else str(list(v) if isinstance(v, tuple) else v)
        lines.append(f"{k} = {value.lower() if isinstance(v, bool) else value}")
    return "\n".join(lines) + "\n"


def write_camera_package(
    store: Path, app: str = "camera", contract_toml: str | None = None, shape: str = "[-1, 3, 4, 6]"
) -> ModelPackage:
    """Identity on ``image`` FP32 NCHW: the output is the tensor the picture became."""
    pdir = store / app / "1"
    pdir.mkdir(parents=True, exist_ok=True)
    dims = ["batch", 3, 4, 6]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["image_out"])],
        "camera",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("image_out", TensorProto.FLOAT, dims)],
    )
    vdir = pdir / "variants" / "base"
    _save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), vdir / "model.onnx"
    )
    _write_variant(vdir, "base", "fp32", 0)
    onnx.checker.check_model(str(vdir / "model.onnx"))
    (pdir / "package.toml").write_text(
        f'schema_version = 2\napplication = "{app}"\nversion = "1"\ntask = "tensor"\n'
        f"accuracy_floor_bp = 0\n"
        f'inputs = [{{name = "image", datatype = "FP32", shape = {shape}}}]\n'
        f'outputs = [{{name = "image_out", datatype = "FP32", shape = [-1, 3, 4, 6]}}]\n'
        f'[lineage]\nfoundation = "test"\nsector = "test"\napplication = "{app}"\n'
        + (contract_toml if contract_toml is not None else camera_contract_toml())
    )
    return load_package(pdir)
