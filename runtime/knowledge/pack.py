"""The knowledge pack on disk: a versioned directory in the store, its manifest, its pointer.

    <store>/_knowledge/<pack>/<version>/manifest.json   what is in it (written last)
    <store>/_knowledge/<pack>/<version>/chunks.sqlite   chunks + SQLite FTS5 index (BM25)
    <store>/_knowledge/<pack>/<version>/vectors.npy     float32 [chunks, dim], unit length
    <store>/_knowledge/<pack>/<version>/vectors.hnsw    the ANN graph (large packs only)
    <store>/_knowledge/<pack>/<version>/golden.json     the golden questions (when built with them)
    <store>/_knowledge/<pack>/active.json               {"version", "previous"}

``_knowledge`` cannot be an application's name (names start with a letter or a digit),
so packs live beside models without ever being taken for one. The manifest carries the
embedder's identity and the sha256 and size of every other file, so a pack can be
verified, signed and shipped as it is (the fleet's slice publishes it as targets).

A version directory is written in a staging directory inside ``_knowledge`` and moved
into place with one rename; the pointer is written atomically (runtime.files). Readers
open the version the pointer names: a switch is one pointer write, and a reader holding
the old version keeps reading it until it lets go (runtime.knowledge.library).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.catalog import NAME_RE, VERSION_RE, version_key
from runtime.catalog.staging import make_staging_dir, sweep_staging
from runtime.errors import MetadataError
from runtime.files import atomic_write_json, fsync_dir
from runtime.knowledge.identity import EmbedderIdentity

PACKS_DIR = "_knowledge"
MANIFEST = "manifest.json"
CHUNKS_DB = "chunks.sqlite"
VECTORS = "vectors.npy"
ANN_INDEX = "vectors.hnsw"
POINTER = "active.json"
GOLDEN = "golden.json"
FORMAT = "headframe-knowledge-pack"
FORMAT_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileDigest(_Strict):
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class SourceDoc(_Strict):
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    chunks: int = Field(ge=0)


class Engine(_Strict):
    """How the pack is searched: exact vectors or an HNSW graph; BM25 by SQLite FTS5."""

    vector: Literal["exact", "hnsw"]
    text: Literal["sqlite-fts5"] = "sqlite-fts5"
    hnsw_m: int | None = None
    hnsw_ef_search: int | None = None


class GoldenSpec(_Strict):
    """The pack's golden questions (``golden.json``) and what its trial requires: at least
    ``recall_floor_bp`` of them find an expected chunk in their first ``k`` results
    (``mode`` ranking); ``recall_bp`` is what the build measured."""

    file: Literal["golden.json"] = "golden.json"
    questions: int = Field(ge=1)
    k: int = Field(ge=1, le=50)
    recall_floor_bp: int = Field(ge=0, le=10_000)
    recall_bp: int = Field(ge=0, le=10_000)
    mode: Literal["hybrid", "vector", "text"] = "hybrid"


class Manifest(_Strict):
    format: Literal["headframe-knowledge-pack"] = "headframe-knowledge-pack"
    format_version: int = Field(default=FORMAT_VERSION, ge=1, le=FORMAT_VERSION)
    pack: str = Field(pattern=NAME_RE)
    version: str = Field(pattern=VERSION_RE)
    created: str
    embedder: EmbedderIdentity
    chunking: dict[str, int]
    engine: Engine
    chunks: int = Field(ge=0)
    sources: tuple[SourceDoc, ...]
    files: dict[str, FileDigest]
    golden: GoldenSpec | None = None
    # Set on a box that embedded the pack's chunks again with its own embedder (the
    # fleet's delivery, ``[fleet] reembed_packs``): who embedded them at build time.
    reembedded_from: EmbedderIdentity | None = None


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def check_name(pack: str, version: str) -> None:
    if not re.match(NAME_RE, pack):
        raise MetadataError(
            f"--pack: {pack!r} is not a valid pack name (lower-case letters, digits, '.', '_' "
            "and '-', starting with a letter or digit, at most 63 characters)"
        )
    if not re.match(VERSION_RE, version):
        raise MetadataError(f"--version: {version!r} is not a version like 1.0.0 or 2.1-rc1")


def read_manifest(vdir: Path) -> Manifest:
    path = vdir / MANIFEST
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise MetadataError(f"{path}: no manifest (not a knowledge pack)") from None
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise MetadataError(f"{path}: {loc}: {first.get('msg')}") from None


def verify(vdir: Path, manifest: Manifest) -> None:
    """Every file the manifest lists has its size and sha256; MetadataError naming one."""
    for name, want in manifest.files.items():
        path = vdir / name
        if not path.is_file():
            raise MetadataError(f"{path}: missing (the manifest lists it)")
        digest, size = sha256_file(path)
        if size != want.size or digest != want.sha256:
            raise MetadataError(f"{path}: does not match the manifest's size and sha256")


class PackStore:
    """The packs under ``<store>/_knowledge``: versions, the active pointer, installs."""

    def __init__(self, store_root: Path) -> None:
        self.root = Path(store_root) / PACKS_DIR

    def packs(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = [p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(n for n in names if self.versions(n))

    def versions(self, pack: str) -> list[str]:
        pdir = self.root / pack
        if not pdir.is_dir():
            return []
        found = [p.name for p in pdir.iterdir()
                 if not p.name.startswith(".") and (p / MANIFEST).is_file()]  # fmt: skip
        return sorted(found, key=version_key)

    def version_dir(self, pack: str, version: str) -> Path:
        return self.root / pack / version

    def active_version(self, pack: str) -> str | None:
        """The pointer's version when it exists, else the highest version present."""
        ptr = self.root / pack / POINTER
        if ptr.is_file():
            try:
                version = str(json.loads(ptr.read_text())["version"])
            except (ValueError, KeyError, TypeError) as e:
                raise MetadataError(f"{ptr}: not a valid pointer file: {e}") from e
            if (self.version_dir(pack, version) / MANIFEST).is_file():
                return version
        versions = self.versions(pack)
        return versions[-1] if versions else None

    def set_active(self, pack: str, version: str) -> None:
        """Switch ``pack`` to ``version`` with one atomic pointer write."""
        if not (self.version_dir(pack, version) / MANIFEST).is_file():
            raise MetadataError(f"{self.root / pack}: no version {version!r} of pack {pack!r}")
        atomic_write_json(
            self.root / pack / POINTER,
            {"version": version, "previous": self.active_version(pack)},
        )

    def manifest(self, pack: str, version: str | None = None) -> tuple[Path, Manifest]:
        version = version or self.active_version(pack)
        if version is None:
            raise MetadataError(f"{self.root}: no knowledge pack {pack!r}")
        vdir = self.version_dir(pack, version)
        if not vdir.is_dir():
            raise MetadataError(f"{self.root / pack}: no version {version!r} of pack {pack!r}")
        return vdir, read_manifest(vdir)

    def pointer(self, pack: str) -> dict[str, str | None]:
        """``{"version", "previous"}``: the pointer file's, else the version the store
        serves without one and no previous."""
        ptr = self.root / pack / POINTER
        try:
            data = json.loads(ptr.read_text())
            return {"version": data.get("version"), "previous": data.get("previous")}
        except FileNotFoundError:
            return {"version": self.active_version(pack), "previous": None}
        except (ValueError, AttributeError) as e:
            raise MetadataError(f"{ptr}: not a valid pointer file: {e}") from e

    def rollback(self, pack: str) -> tuple[str, str]:
        """Serve the pointer's previous version again; (from, to). The pointer keeps no
        previous afterwards, so a second rollback does not bounce back."""
        ptr = self.root / pack / POINTER
        data = self.pointer(pack)
        current, previous = data["version"], data["previous"]
        if not previous:
            raise MetadataError(f"pack {pack!r}: no previous version to roll back to")
        if not (self.version_dir(pack, previous) / MANIFEST).is_file():
            raise MetadataError(f"pack {pack!r}: previous version {previous} is no longer here")
        atomic_write_json(ptr, {"version": previous, "previous": None})
        return str(current), str(previous)

    def remove_version(self, pack: str, version: str) -> None:
        """Remove a version the pointer does not name (one rename away, then deleted)."""
        if version == self.active_version(pack):
            raise MetadataError(f"pack {pack!r}: {version} is active; roll back first")
        vdir = self.version_dir(pack, version)
        if vdir.is_dir():
            gone = vdir.parent / f".old-{version}-{uuid.uuid4().hex[:8]}"
            vdir.rename(gone)
            fsync_dir(vdir.parent)
            shutil.rmtree(gone, ignore_errors=True)

    def clean_staging(self) -> list[str]:
        """Remove the staging directories a killed process left (never a live one's)."""
        return [p.name for p in sweep_staging(self.root)] if self.root.is_dir() else []

    @contextlib.contextmanager
    def staging(self, kind: str = "") -> Iterator[Path]:
        """A fresh directory on the store's filesystem, removed unless installed (its name
        starts with a dot: never taken for a pack; ``kind`` names who stages, e.g. "fleet");
        what a killed process left there is swept first (runtime/catalog/staging.py)."""
        sweep_staging(self.root)
        path = make_staging_dir(self.root, kind)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def install(self, staged: Path, *, replace: bool = False) -> Path:
        """Verify the pack in ``staged`` and move it into place with one rename."""
        manifest = read_manifest(staged)
        verify(staged, manifest)
        target = self.version_dir(manifest.pack, manifest.version)
        target.parent.mkdir(parents=True, exist_ok=True)
        old: Path | None = None
        if target.exists():
            if not replace:
                raise MetadataError(
                    f"{target}: pack {manifest.pack} {manifest.version} is already in the "
                    "store (choose another --version, or --replace it)"
                )
            old = target.parent / f".old-{manifest.version}-{uuid.uuid4().hex[:8]}"
            target.rename(old)
        staged.rename(target)
        fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return target
