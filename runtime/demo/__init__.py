"""The built-in demo catalog (``part-id-reader``), made from scikit-learn's digits.

Importing this package is cheap: scikit-learn, onnx, onnxruntime and OpenVINO are
imported only when a catalog is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.catalog import ModelPackage

APP = "part-id-reader"
VERSION = "1.0.0"


def build_demo_catalog(
    store_dir: Path, *, seed: int = 0, force: bool = False
) -> list[ModelPackage]:
    """Build (or find) the demo packages in ``store_dir``; see runtime.demo.factory."""
    from runtime.demo.factory import build_demo_catalog as build

    return build(store_dir, seed=seed, force=force)


__all__ = ["APP", "VERSION", "build_demo_catalog"]
