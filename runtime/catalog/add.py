"""Importing models into the store: a package directory as it is, or a bare model file
(.onnx, OpenVINO .xml + .bin, .gguf) wrapped into a one-variant package.

For a bare file we record what can be measured without a golden set: bytes, sha256,
precision and the input/output schema from the file itself, an estimated peak memory.
Accuracy and latency stay unknown (null), and the accuracy floor of such a package is 0:
a floor cannot be promised for numbers nobody measured.

A package directory is someone else's tree, so nothing in it is trusted: only the files
the metadata names are copied (package.toml, the golden set, each variant.toml and the
files it lists), each must be a regular file reached without a symbolic link, the
metadata files are capped, a listed file is read up to its recorded size and no further,
and the whole must fit in the store's free space before a byte is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from runtime.backend_table import estimate_peak_memory, reference_row
from runtime.catalog.golden import check_npz
from runtime.catalog.inspect import ModelInfo, decide_task, inspect_model
from runtime.catalog.package import (
    NAME_RE,
    SCHEMA_VERSION,
    VERSION_RE,
    Lineage,
    ModelPackage,
    PackageMeta,
    VariantMeta,
    load_package,
)
from runtime.catalog.store import Store
from runtime.catalog.writer import (
    PACKAGE_FILE,
    VARIANT_FILE,
    install_package,
    staging_dir,
    variant_files,
    write_package_meta,
    write_variant_meta,
)
from runtime.errors import BuildInputError, MetadataError

log = logging.getLogger(__name__)

DEFAULT_VERSION = "1.0.0"
# Judges a wrapped package before it is installed: MetadataError to refuse it.
Check = Callable[[ModelPackage], None]
# Caps on what a package directory may make us read: its TOML files, and its golden set
# (whose size no metadata records; model files are capped by the sizes variant.toml gives).
MAX_META_BYTES = 1 << 20
MAX_GOLDEN_BYTES = 1 << 30
_CHUNK = 1 << 20


def import_path(
    store: Store,
    path: Path,
    app: str | None = None,
    version: str | None = None,
    *,
    replace: bool = False,
    task: str | None = None,
    check: Check | None = None,
) -> ModelPackage:
    """Import ``path`` into ``store`` and return the installed package.

    A directory must be a package (``package.toml`` + ``variants/``): it is validated,
    its digests checked, then copied; ``app``/``version`` rename it when given. A file is
    wrapped (``app`` defaults to a name made from the file name, ``version`` to 1.0.0),
    and ``check`` (the CLI passes runtime.loading.import_check.trial_load: the catalog
    loads no models) judges the wrapped package before it is installed. ``task``
    overrides what inspection decides for a file (``decide_task``); a package says its
    own. An existing ``<app>/<version>`` is an error unless ``replace``.
    """
    path = Path(path)
    if path.is_dir():
        if task is not None:
            raise MetadataError(f"{path}: --task is for a model file; a package says its task")
        return _import_package_dir(store, path, app, version, replace)
    if path.is_file():
        return _import_file(store, path, app, version, replace, task, check)
    if path.exists():
        raise MetadataError(f"{path}: not a regular file or directory (a device, pipe or socket)")
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
    _check_metadata_files(src)  # before any parser opens them
    package = load_package(src)  # errors name the source file and field
    updates: dict[str, str] = {}
    if app is not None and app != package.application:
        updates["application"] = app
    if version is not None and version != package.version:
        updates["version"] = version
    with staging_dir(store) as staged:
        _check_space(src, package, staged)
        _copy_listed(package, staged)
        if updates:
            write_package_meta(package.meta.model_copy(update=updates), staged)
        return _install(staged, store, replace)


def _regular_file(root: Path, rel: str) -> Path:
    """``root/rel`` if every part of it is a plain directory or, last, a regular file;
    MetadataError naming the first symbolic link or special file on the way."""
    path = root
    parts = Path(rel).parts
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = path.lstat().st_mode
        except OSError:
            raise MetadataError(f"{path}: no such file") from None
        if stat.S_ISLNK(mode):
            raise MetadataError(
                f"{path}: is a symbolic link; a package directory holds plain files and "
                "directories only (copy the file itself there)"
            )
        want_dir = i < len(parts) - 1
        if want_dir and not stat.S_ISDIR(mode):
            raise MetadataError(f"{path}: not a directory")
        if not want_dir and not stat.S_ISREG(mode):
            raise MetadataError(f"{path}: not a regular file (a directory, device, pipe or socket)")
    return path


def _check_metadata_files(src: Path) -> None:
    """package.toml, variants/ and every variants/*/variant.toml: plain, and small."""
    for path in [_regular_file(src, PACKAGE_FILE), *_variant_metadata(src)]:
        if path.stat().st_size > MAX_META_BYTES:
            raise MetadataError(f"{path}: over {MAX_META_BYTES} bytes; not package metadata")


def _variant_metadata(src: Path) -> list[Path]:
    vroot = src / "variants"
    if vroot.is_symlink() or (vroot.exists() and not vroot.is_dir()):
        _regular_file(src, "variants/-")  # raises, naming the link or the file
    if not vroot.exists():
        return []  # load_package says the package has no variants
    found = []
    for child in sorted(vroot.iterdir()):
        if child.is_symlink():
            _regular_file(vroot, child.name)  # raises: a link
        if child.is_dir():
            found.append(_regular_file(child, VARIANT_FILE))
    return found


def _check_space(src: Path, package: ModelPackage, staged: Path) -> None:
    needed = sum(e.size for v in package.variants for e in v.meta.files)
    free = shutil.disk_usage(staged).free
    if needed > free:
        raise MetadataError(
            f"{src}: its variants need {needed} bytes but the store at {staged.parent} has "
            f"{free} bytes free"
        )


def _copy_listed(package: ModelPackage, staged: Path) -> None:
    """Copy the files the metadata names into ``staged``, checking sizes and digests on
    the way; errors name the source metadata file and field."""
    src = package.path
    _copy_capped(_regular_file(src, PACKAGE_FILE), staged / PACKAGE_FILE, MAX_META_BYTES)
    golden = package.meta.golden
    if golden is not None:
        where = f"{src / PACKAGE_FILE}: golden"
        digest, _ = _copy_capped(
            _regular_file(src, golden.file), staged / golden.file, MAX_GOLDEN_BYTES, where
        )
        if digest != golden.sha256:
            raise MetadataError(f"{where}.sha256: {golden.file} does not match its digest")
        try:  # every box that measures the package will read it: bounded before it does
            check_npz(staged / golden.file)
        except BuildInputError as e:
            why = e.message.replace(str(staged / golden.file), golden.file)
            raise MetadataError(f"{where}: {why}") from None
    copied = 0
    for v in package.variants:
        vdir = staged / "variants" / v.id
        _copy_capped(v.path / VARIANT_FILE, vdir / VARIANT_FILE, MAX_META_BYTES)
        meta_path = v.path / VARIANT_FILE
        for i, entry in enumerate(v.meta.files):
            where = f"{meta_path}: files.{i}"
            digest, size = _copy_capped(
                _regular_file(v.path, entry.path), vdir / entry.path, entry.size, where
            )
            if size != entry.size:
                raise MetadataError(f"{where}.size: {entry.path} is {size} bytes, not {entry.size}")
            if digest != entry.sha256:
                raise MetadataError(f"{where}.sha256: {entry.path} does not match its digest")
            copied += 1
        if v.meta.entrypoint not in {e.path for e in v.meta.files}:
            raise MetadataError(
                f"{meta_path}: entrypoint: {v.meta.entrypoint} is not among the files"
            )
    log.info("copied %d listed files from %s; anything else there was left out", copied, src)


def _copy_capped(src: Path, dest: Path, limit: int, where: str = "") -> tuple[str, int]:
    """Copy at most ``limit`` bytes of the regular file ``src`` (not following a link);
    (sha256, size). MetadataError if it holds more: it is not what the metadata says."""
    prefix = f"{where}: " if where else ""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise MetadataError(f"{prefix}{src}: cannot open: {e.strerror}") from None
    h = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check
            raise MetadataError(f"{prefix}{src}: not a regular file")
        try:
            out = dest.open("xb")
        except FileExistsError:  # two entries name one file (or variant.toml itself)
            raise MetadataError(f"{prefix}{dest.name} is listed twice") from None
        with out:
            while chunk := f.read(min(_CHUNK, limit + 1 - size)):
                size += len(chunk)
                if size > limit:
                    raise MetadataError(f"{prefix}{src.name} holds more than {limit} bytes")
                h.update(chunk)
                out.write(chunk)
    return h.hexdigest(), size


def _import_file(
    store: Store, src: Path, app: str | None, version: str | None, replace: bool,
    task: str | None = None,
    check: Check | None = None,
) -> ModelPackage:  # fmt: skip
    _check_names(app, version)
    info = decide_task(inspect_model(src), src, task)
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
        if check is not None:
            try:
                check(load_package(staged))
            except MetadataError as e:
                raise MetadataError(f"{src}: {e.message}") from None
        return _install(staged, store, replace)


def _variant_meta(variant_id: str, entry: str, info: ModelInfo, vdir: Path) -> VariantMeta:
    files, n_bytes = variant_files(vdir)
    return VariantMeta(
        variant=variant_id,
        format=info.format,
        precision=info.precision,
        entrypoint=entry,
        files=files,
        bytes=n_bytes,
        peak_memory_bytes=estimate_peak_memory(info.format, n_bytes, info.runtime_bytes),
        # where such a file is known to run; the profile narrows it at selection time
        device_classes=reference_row(info.format).bare_file_devices,  # type: ignore[arg-type]
    )


def _package_meta(app: str, version: str, src: Path, info: ModelInfo) -> PackageMeta:
    return PackageMeta(
        # the writer lowers it again to the oldest schema the package needs
        schema_version=SCHEMA_VERSION,
        application=app,
        version=version,
        task=info.task,  # type: ignore[arg-type]
        description=f"Imported from {src.name} as {info.task}"
        + (f": {info.task_reason}" if info.task_reason else ""),
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
