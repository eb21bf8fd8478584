"""The demo model factory: the cloud's three steps (train, prune, quantize/convert), small
and real, producing the ``part-id-reader`` package into a store.

Everything is derived from the seed: the split, the training order, the pruning choice,
the calibration set. The same seed gives the same weights and the same accuracies.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.backend_table import estimate_peak_memory
from runtime.catalog import (
    GoldenSet,
    Lineage,
    ModelPackage,
    PackageMeta,
    Store,
    TensorSpec,
    VariantMeta,
)
from runtime.catalog.golden import write_npz
from runtime.catalog.writer import (
    install_package,
    staging_dir,
    variant_files,
    write_package_meta,
    write_variant_meta,
)
from runtime.demo import export_onnx, measure, pictures
from runtime.demo.data import N_CLASSES, N_FEATURES, DigitsSplit, load_split
from runtime.demo.prune import prune_and_fine_tune
from runtime.demo.train import layers, train_base
from runtime.errors import BackendUnavailable, MetadataError
from runtime.factory.exclusion import int8_static_within
from runtime.factory.measure import reference_cpu
from runtime.factory.onnx_variants import prepare
from runtime.factory.openvino_variants import make_ir_fp16
from runtime.files import sha256_file

log = logging.getLogger(__name__)

APP = "part-id-reader"
VERSION = "1.0.0"
GOLDEN_FILE = "golden.npz"
ACCURACY_FLOOR_BP = 9000
LATENCY_BUDGET_US = 50_000  # generous: a slow Arm box in a cabinet must still pass its trial
PRUNING_RATIOS = {"pruned50": 0.5, "pruned75": 0.75}
ESTIMATE_BATCH = 64  # peak memory estimates include the activations of a batch this big
INT8_MAX_DROP_BP = 50  # int8 within half a point of its fp32 model on the held-out digits
INT8_SEARCH_S = 60.0


@dataclass(frozen=True)
class VariantSpec:
    variant: str
    model: str  # key into the trained models: "fp32" (base), "pruned50", "pruned75"
    format: str
    precision: str
    device_classes: tuple[str, ...]


VARIANTS = (
    VariantSpec("fp32", "fp32", "onnx", "fp32", ("cpu", "gpu")),
    VariantSpec("pruned50-fp32", "pruned50", "onnx", "fp32", ("cpu", "gpu")),
    VariantSpec("pruned75-fp32", "pruned75", "onnx", "fp32", ("cpu", "gpu")),
    VariantSpec("pruned75-int8", "pruned75", "onnx", "int8", ("cpu",)),
    VariantSpec("pruned50-openvino-fp16", "pruned50", "openvino", "fp16", ("cpu", "gpu", "npu")),
)


def train_models(split: DigitsSplit, seed: int = 0) -> dict[str, Any]:
    """The trained sklearn MLPClassifiers by key: "fp32" (full width), "pruned50", "pruned75".

    Tests call this to get the reference predictions the exported graphs must match."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the matrices are small, so threads only add overhead, and on a
    # busy box spinning BLAS threads slow training down by an order of magnitude.
    # A fixed thread count also keeps the float sums in the same order, run after run.
    with threadpool_limits(limits=1):
        base = train_base(split, seed)
        models = {"fp32": base}
        for key, ratio in PRUNING_RATIOS.items():
            models[key] = prune_and_fine_tune(base, split, ratio, seed)
    return models


def write_golden(path: Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    """The golden .npz, written by the factory's golden-file writer (reproducible bytes)."""
    write_npz(path, {"pixels": pixels.astype(np.float32), "labels": labels.astype(np.int64)})


def _peak_memory(fmt: str, n_bytes: int, widths: list[int]) -> int:
    activations = ESTIMATE_BATCH * sum(widths) * 4 * 2  # each layer's output, plus a copy
    return estimate_peak_memory(fmt, n_bytes, activations)


def _make_variant(
    spec: VariantSpec,
    vdir: Path,
    onnx_fp32: dict[str, Path],
    split: DigitsSplit,
    widths: list[int],
    cpu: str,
) -> VariantMeta:
    vdir.mkdir(parents=True, exist_ok=True)
    if spec.format == "openvino":
        xml = make_ir_fp16(onnx_fp32[spec.model], vdir / "model.xml")
        entry, run = xml, measure.openvino_runner(xml)
    elif spec.precision == "int8":
        entry = _int8(onnx_fp32[spec.model], vdir / "model.onnx", split)
        run = measure.onnx_runner(entry)
    else:
        entry = vdir / "model.onnx"
        entry.write_bytes(onnx_fp32[spec.model].read_bytes())
        run = measure.onnx_runner(entry)
    files, n_bytes = variant_files(vdir)
    acc = measure.accuracy(run, split.test_pixels, split.test_labels)
    lat = measure.latency_us(run, split.test_pixels)
    pruning = PRUNING_RATIOS.get(spec.model, 0.0)
    meta = VariantMeta.model_validate(
        {
            "variant": spec.variant,
            "format": spec.format,
            "precision": spec.precision,
            "pruning_bp": round(pruning * 10_000),
            "entrypoint": entry.relative_to(vdir).as_posix(),
            "files": [f.model_dump() for f in files],
            "bytes": n_bytes,
            "peak_memory_bytes": _peak_memory(spec.format, n_bytes, widths),
            "device_classes": spec.device_classes,
            "accuracy_bp": acc,
            "latency_us": lat,
            "reference_cpu": cpu,
        }
    )
    write_variant_meta(meta, vdir)
    log.info("demo variant %s: %d bytes, %d bp, %d us", spec.variant, n_bytes, acc, lat)
    return meta


def _int8(src: Path, dst: Path, split: DigitsSplit) -> Path:
    """The variant factory's int8-static path (runtime/factory): the prepared graph,
    reduce-range QDQ calibrated on training pixels (no saturation on x86 without VNNI),
    nodes kept in float until the held-out accuracy is within INT8_MAX_DROP_BP of fp32."""
    prepared = src.with_name(f"{src.stem}-prepared.onnx")
    prepare(src, prepared)

    def score(path: Path) -> int:
        return measure.accuracy(measure.onnx_runner(path), split.test_pixels, split.test_labels)

    search = int8_static_within(
        prepared,
        dst,
        {export_onnx.INPUT_NAME: split.train_pixels},
        scheme="reduce-range",
        score=score,
        reference_bp=score(prepared),
        max_drop_bp=INT8_MAX_DROP_BP,
        deadline=time.monotonic() + INT8_SEARCH_S,
    )
    log.info("demo int8: %s", search.to_dict())
    return dst


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _require_factory_packages() -> None:
    missing = [m for m in ("sklearn", "onnx", "onnxruntime") if not _installed(m)]
    if missing:
        raise BackendUnavailable(
            f"the demo factory needs {', '.join(missing)}: pip install 'headframe[demo]'"
        )


def buildable_variants() -> tuple[VariantSpec, ...]:
    """The variants this install can make: the OpenVINO one needs the openvino package,
    which is an extra of its own; without it the demo ships the ONNX variants only."""
    if _installed("openvino"):
        return VARIANTS
    log.warning("openvino is not installed: the demo is built without its OpenVINO variant")
    return tuple(v for v in VARIANTS if v.format != "openvino")


def build_package_tree(package_dir: Path, seed: int = 0) -> None:
    """Train, prune, export, quantize, convert and measure into ``package_dir``."""
    _require_factory_packages()
    specs = buildable_variants()
    split = load_split(seed)
    models = train_models(split, seed)
    work = package_dir / ".work"
    onnx_fp32 = {
        key: export_onnx.save_model(layers(clf), work / f"{key}.onnx")
        for key, clf in models.items()
    }
    cpu = reference_cpu()
    for spec in specs:
        widths = [c.shape[1] for c in models[spec.model].coefs_]
        _make_variant(spec, package_dir / "variants" / spec.variant, onnx_fp32, split, widths, cpu)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()
    write_golden(package_dir / GOLDEN_FILE, split.test_pixels, split.test_labels)
    meta = PackageMeta.model_validate(
        {
            "schema_version": 2,  # for the picture contract and the labels
            "application": APP,
            "version": VERSION,
            "task": "tensor",
            "description": "Reads the digit stamped on a part: 8x8 grey image (0..16) or a "
            "PNG/JPEG picture in, class probabilities out. Demo model trained on "
            "scikit-learn's digits.",
            "lineage": Lineage(
                foundation="digits-mlp-base", sector="manufacturing", application=APP
            ),
            "accuracy_floor_bp": ACCURACY_FLOOR_BP,
            "latency_budget_us": LATENCY_BUDGET_US,
            "inputs": [TensorSpec(name="pixels", datatype="FP32", shape=(-1, N_FEATURES))],
            "outputs": [TensorSpec(name="probabilities", datatype="FP32", shape=(-1, N_CLASSES))],
            "golden": GoldenSet(
                file=GOLDEN_FILE,
                sha256=sha256_file(package_dir / GOLDEN_FILE),
                samples=len(split.test_labels),
            ),
            # Pictures in (runtime/demo/pictures.py renders them) and the top-k by name.
            "images": {"pixels": pictures.IMAGE_CONTRACT},
            "labels": {"probabilities": pictures.LABELS},
        }
    )
    write_package_meta(meta, package_dir)


def build_demo_catalog(
    store_dir: Path, *, seed: int = 0, force: bool = False
) -> list[ModelPackage]:
    """Build the demo packages into ``store_dir`` (idempotent: when a valid demo package
    is already there and ``force`` is false, return it without rebuilding)."""
    store = Store(Path(store_dir))
    if not force and VERSION in store.versions(APP):
        try:
            package = store.load(APP, VERSION)
        except MetadataError as e:
            log.warning("demo package in the store is invalid, rebuilding: %s", e)
            force = True
        else:
            if package.meta.images:
                return [package]
            log.warning("demo package in the store predates its picture contract, rebuilding")
            force = True
    with staging_dir(store) as staged:
        build_package_tree(staged, seed)
        try:
            package = install_package(staged, store, replace=force)
        except (MetadataError, OSError):
            if force or VERSION not in store.versions(APP):
                raise
            # another process installed the demo while we built it: theirs is as good
            package = store.load(APP, VERSION)
    return [package]
