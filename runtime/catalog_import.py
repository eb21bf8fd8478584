"""Importing models into the store: a package directory as it is, or a bare model file
(.onnx, OpenVINO .xml + .bin, .gguf) wrapped into a one-variant package.

For a bare file we record what can be measured without a golden set: bytes, sha256,
precision and the input/output schema from the file itself, an estimated peak memory.
Accuracy and latency stay unknown (null), and the accuracy floor of such a package is 0:
a floor cannot be promised for numbers nobody measured.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from runtime.catalog import (
    NAME_RE,
    VERSION_RE,
    Lineage,
    ModelPackage,
    PackageMeta,
    Store,
    VariantMeta,
    load_package,
)
from runtime.errors import MetadataError
from runtime.model_inspect import ModelInfo, inspect_model
from runtime.package_writer import (
    PACKAGE_FILE,
    estimate_peak_memory,
    install_package,
    staging_dir,
    variant_files,
    verify_package,
    write_package_meta,
    write_variant_meta,
)

log = logging.getLogger(__name__)

DEFAULT_VERSION = "1.0.0"
# Where each format can run; the device profile narrows it further at selection time.
DEVICE_CLASSES = {"onnx": ("cpu", "gpu"), "openvino": ("cpu", "gpu", "npu"), "gguf": ("cpu", "gpu")}


def import_path(
    store: Store,
    path: Path,
    app: str | None = None,
    version: str | None = None,
    *,
    replace: bool = False,
) -> ModelPackage:
    """Import ``path`` into ``store`` and return the installed package.

    A directory must be a package (``package.toml`` + ``variants/``): it is validated,
    its digests checked, then copied; ``app``/``version`` rename it when given. A file is
    wrapped (``app`` defaults to a name made from the file name, ``version`` to 1.0.0).
    An existing ``<app>/<version>`` is an error unless ``replace``.
    """
    path = Path(path)
    if path.is_dir():
        return _import_package_dir(store, path, app, version, replace)
    if path.is_file():
        return _import_file(store, path, app, version, replace)
    raise MetadataError(f"{path}: no such file or directory")


def app_name_from(path: Path) -> str:
    """A valid application name made from a file name: ``My Model-v2.onnx`` -> ``my-model-v2``."""
    stem = path.name.split(".")[0] if not path.is_dir() else path.name
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")[:63]
    return name or "model"


def _check_names(app: str | None, version: str | None) -> None:
    if app is not None and not re.match(NAME_RE, app):
        raise MetadataError(
            f"--app: {app!r} is not a valid application name (lower-case letters, digits, "
            "'.', '_' and '-', starting with a letter or digit, at most 63 characters)"
        )
    if version is not None and not re.match(VERSION_RE, version):
        raise MetadataError(f"--version: {version!r} is not a version like 1.0.0 or 2.1-rc1")


def _import_package_dir(
    store: Store, src: Path, app: str | None, version: str | None, replace: bool
) -> ModelPackage:
    _check_names(app, version)
    if not (src / PACKAGE_FILE).is_file():
        raise MetadataError(
            f"{src}: not a model package (no {PACKAGE_FILE}); to import a single model, "
            "give the model file itself"
        )
    package = load_package(src)  # errors name the source file and field
    verify_package(package)
    updates: dict[str, str] = {}
    if app is not None and app != package.application:
        updates["application"] = app
    if version is not None and version != package.version:
        updates["version"] = version
    with staging_dir(store) as staged:
        shutil.rmtree(staged)
        shutil.copytree(src, staged, ignore=shutil.ignore_patterns(".*"), symlinks=False)
        if updates:
            write_package_meta(package.meta.model_copy(update=updates), staged)
        return _install(staged, store, replace)


def _import_file(
    store: Store, src: Path, app: str | None, version: str | None, replace: bool
) -> ModelPackage:
    _check_names(app, version)
    info = inspect_model(src)
    app = app or app_name_from(src)
    version = version or DEFAULT_VERSION
    variant_id = f"{info.format}-{info.precision}"
    with staging_dir(store) as staged:
        vdir = staged / "variants" / variant_id
        vdir.mkdir(parents=True)
        shutil.copy2(src, vdir / src.name)
        for f in info.extra_files:  # keep relative paths: the model refers to them so
            dest = vdir / f.relative_to(src.resolve().parent)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        meta = _variant_meta(variant_id, src.name, info, vdir)
        write_variant_meta(meta, vdir)
        write_package_meta(_package_meta(app, version, src, info), staged)
        return _install(staged, store, replace)


def _variant_meta(variant_id: str, entry: str, info: ModelInfo, vdir: Path) -> VariantMeta:
    files, n_bytes = variant_files(vdir)
    return VariantMeta(
        variant=variant_id,
        format=info.format,  # type: ignore[arg-type]
        precision=info.precision,
        entrypoint=entry,
        files=files,
        bytes=n_bytes,
        peak_memory_bytes=estimate_peak_memory(info.format, n_bytes, info.runtime_bytes),
        device_classes=DEVICE_CLASSES[info.format],  # type: ignore[arg-type]
    )


def _package_meta(app: str, version: str, src: Path, info: ModelInfo) -> PackageMeta:
    return PackageMeta(
        application=app,
        version=version,
        task=info.task,  # type: ignore[arg-type]
        description=f"Imported from {src.name}",
        lineage=Lineage(foundation=info.name or src.name, sector="unknown", application=app),
        accuracy_floor_bp=0,
        inputs=info.inputs,
        outputs=info.outputs,
    )


def _install(staged: Path, store: Store, replace: bool) -> ModelPackage:
    # Refuse an existing version before install_package's own check, with a hint.
    package = load_package(staged)
    target = store.package_dir(package.application, package.version)
    if target.exists() and not replace:
        raise MetadataError(
            f"{target}: {package.application} {package.version} is already in the store "
            "(choose another --version, or replace it)"
        )
    installed = install_package(staged, store, replace=replace)
    log.info(
        "imported %s %s (%d variants)",
        installed.application,
        installed.version,
        len(installed.variants),
    )
    return installed
