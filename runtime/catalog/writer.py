"""Writing model packages: TOML for the metadata, file digests, atomic install into a store.

The reading side (validation, the store index) is runtime/catalog/package.py; this module is its
mirror for the tools that make packages (the demo factory, ``headframe models add``, the
fleet installer). A package is assembled in a staging directory inside the store root
(same filesystem), validated with the very code that will later read it, then moved into
``<store>/<app>/<version>`` with one ``rename``: a reader sees the whole package or none.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel

from runtime.catalog.package import (
    FileEntry,
    ModelPackage,
    PackageMeta,
    VariantMeta,
    file_problems,
    load_package,
    required_schema_version,
)
from runtime.catalog.staging import make_staging_dir, sweep_staging
from runtime.catalog.store import Store
from runtime.errors import MetadataError
from runtime.files import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

PACKAGE_FILE = "package.toml"
VARIANT_FILE = "variant.toml"


# --- TOML ------------------------------------------------------------------------------


def dumps_toml(data: Mapping[str, Any]) -> str:
    """TOML text for ``data`` (tomli-w); ``None`` values are left out (TOML has no null)
    and a non-finite float is refused: signed metadata holds finite numbers only."""
    return tomli_w.dumps(_checked(data, ""))


def _checked(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _checked(v, f"{where}{k}.") for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_checked(v, where) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where.rstrip('.')}: TOML metadata holds finite numbers only")
    return value


def _meta_dict(meta: BaseModel) -> dict[str, Any]:
    return meta.model_dump(mode="json", exclude_none=True)


def write_package_meta(meta: PackageMeta, package_dir: Path) -> Path:
    """Write ``package.toml`` into ``package_dir``, at the oldest schema that holds it."""
    path = Path(package_dir) / PACKAGE_FILE
    data = _meta_dict(meta)
    data["schema_version"] = required_schema_version(meta)
    _write_text_atomic(path, dumps_toml(data))
    return path


def write_variant_meta(meta: VariantMeta, variant_dir: Path) -> Path:
    """Write ``variant.toml`` into ``variant_dir``."""
    path = Path(variant_dir) / VARIANT_FILE
    _write_text_atomic(path, dumps_toml(_meta_dict(meta)))
    return path


def _write_text_atomic(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# --- files -----------------------------------------------------------------------------


def file_entry(path: Path, root: Path) -> FileEntry:
    """The FileEntry (relative path, sha256, size) of ``path`` inside ``root``."""
    path = Path(path)
    return FileEntry(
        path=path.relative_to(root).as_posix(), sha256=sha256_file(path), size=path.stat().st_size
    )


def variant_files(variant_dir: Path) -> tuple[tuple[FileEntry, ...], int]:
    """Every payload file of a variant directory (variant.toml excluded), sorted, and the
    total bytes on disk."""
    variant_dir = Path(variant_dir)
    entries = tuple(
        file_entry(p, variant_dir)
        for p in sorted(variant_dir.rglob("*"))
        if p.is_file() and p.name != VARIANT_FILE and not p.name.startswith(".")
    )
    return entries, sum(e.size for e in entries)


def verify_variant_files(variant_dir: Path, meta: VariantMeta) -> None:
    """Raise MetadataError naming variant.toml and the field if a listed file is missing
    or its size or sha256 differs (``catalog.package.file_problems``)."""
    where = Path(variant_dir) / VARIANT_FILE
    for problem in file_problems(Path(variant_dir), meta.files, lambda path, _: sha256_file(path)):
        raise MetadataError(f"{where}: files.{problem.index}.{problem.field}: {problem.text}")
    if meta.entrypoint not in {e.path for e in meta.files}:
        raise MetadataError(f"{where}: entrypoint: {meta.entrypoint} is not among the files")


def verify_package(package: ModelPackage) -> None:
    """Check every variant's files and the golden set against their digests."""
    for v in package.variants:
        verify_variant_files(v.path, v.meta)
    golden = package.meta.golden
    if golden is not None:
        path = package.path / golden.file
        where = package.path / PACKAGE_FILE
        if not path.is_file():
            raise MetadataError(f"{where}: golden.file: {golden.file} does not exist")
        if sha256_file(path) != golden.sha256:
            raise MetadataError(f"{where}: golden.sha256: {golden.file} does not match its digest")


# --- install ---------------------------------------------------------------------------


@contextmanager
def staging_dir(store: Store) -> Iterator[Path]:
    """A fresh directory inside the store root (so the final rename stays on one
    filesystem); removed afterwards unless ``install_package`` moved it away. What a
    killed writer left there is swept first (runtime/catalog/staging.py)."""
    sweep_staging(store.root)
    path = make_staging_dir(store.root)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def install_package(staged: Path, store: Store, *, replace: bool = False) -> ModelPackage:
    """Validate the package in ``staged`` and move it into the store in one rename.

    ``staged`` must live on the store's filesystem (use ``staging_dir``). An existing
    ``<app>/<version>`` is an error unless ``replace``; then the old tree is moved aside
    first and deleted after the new one is in place.
    """
    package = load_package(staged)
    verify_package(package)
    app, version = package.application, package.version
    target = store.package_dir(app, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    old: Path | None = None
    if target.exists():
        if not replace:
            raise MetadataError(f"{target}: {app} {version} is already in the store")
        old = Path(tempfile.mkdtemp(prefix=f".old-{version}-", dir=target.parent))
        os.replace(target, old / "pkg")
    try:
        os.rename(staged, target)
    except OSError:
        if old is not None:  # put the previous package back: never leave a hole
            os.replace(old / "pkg", target)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.info("installed %s %s into %s", app, version, store.root)
    return load_package(target)


def remove_package(store: Store, app: str, version: str | None = None) -> list[str]:
    """Remove ``version`` of ``app`` (default: every version, the whole application) from
    the store; returns the versions removed. The last version takes the application with
    it. Like an install, one ``rename``: the tree is moved under a dot-name (which readers
    and the daemon's store watcher ignore) and only then deleted, so a reader never sees
    half a package. MetadataError when there is no such application or version.
    """
    versions = store.versions(app) if app in store.applications() else []
    if not versions:
        raise MetadataError(f"{store.root}: no application {app!r} in the store")
    if version is not None and version not in versions:
        have = ", ".join(versions)
        raise MetadataError(f"{store.root / app}: no version {version!r} (it has {have})")
    removed = versions if version is None or versions == [version] else [version]
    target = store.root / app if removed == versions else store.package_dir(app, version or "")
    trash = Path(tempfile.mkdtemp(prefix=".removed-", dir=target.parent))
    os.rename(target, trash / target.name)
    shutil.rmtree(trash, ignore_errors=True)
    log.info("removed %s %s from %s", app, ", ".join(removed), store.root)
    return removed


def schema_text() -> str:
    """The JSON Schema of package.toml and variant.toml as published in docs/."""
    import json

    from runtime.catalog.package import json_schema

    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if (
    __name__ == "__main__"
):  # python -m runtime.catalog.writer --schema > docs/model-package.schema.json
    import sys

    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m runtime.catalog.writer --schema")
    sys.stdout.write(schema_text())
