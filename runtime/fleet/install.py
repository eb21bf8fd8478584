"""Putting a verified release into the store, switching to it, and going back.

Files land in a content-addressed blob store (``<store>/.fleet/blobs/<sha256>``) once
their length and sha256 match the signed target. A version is staged by hard-linking
blobs into ``<store>/.fleet/staging/<app>/<version>`` and renaming that tree into
``<store>/<app>/<version>`` in one step. Serving switches only when the pointer
``<store>/<app>/active.json`` is replaced (write, fsync, rename, fsync dir), so a power
cut at any moment leaves the old pointer (old version serves) or the new one (the new,
trialled version serves). Versions the agent staged but never activated are removed at
the next start, and trialled again if still wanted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tufx
from tuf.api.metadata import TargetFile

from runtime.catalog import FLEET_STAGED_MARKER, Store
from runtime.errors import MetadataError
from runtime.files import atomic_write_json, fsync_dir
from runtime.fleet.releases import Release
from runtime.fleet.state import pause_point

log = logging.getLogger(__name__)

STAGED_MARKER = FLEET_STAGED_MARKER  # the store never serves such a version unpointed


class Installer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.fleet_dir = store.root / ".fleet"
        self.blobs = self.fleet_dir / "blobs"
        self.partials = self.fleet_dir / "partial"
        self.staging = self.fleet_dir / "staging"

    # ---- blobs --------------------------------------------------------------------
    def blob_path(self, target: TargetFile) -> Path:
        return self.blobs / target.hashes["sha256"]

    def partial_path(self, target: TargetFile) -> Path:
        return self.partials / f"{target.hashes['sha256']}.partial"

    def has_blob(self, target: TargetFile) -> bool:
        """True when the blob exists and still matches the signed length and hash."""
        path = self.blob_path(target)
        if not path.is_file():
            return False
        try:
            with path.open("rb") as f:
                target.verify_length_and_hashes(f)
        except tufx.LengthOrHashMismatchError:
            log.warning("%s: blob does not match %s; fetching it again", path, target.path)
            path.unlink()
            return False
        return True

    def commit_blob(self, target: TargetFile, verified: Path) -> Path:
        dest = self.blob_path(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(verified, dest)
        fsync_dir(dest.parent)
        return dest

    # ---- pointer ------------------------------------------------------------------
    def pointer(self, app: str) -> dict[str, Any]:
        ptr = self.store.pointer_path(app)
        if ptr.is_file():
            try:
                data = json.loads(ptr.read_text())
                return {"version": data.get("version"), "previous": data.get("previous")}
            except ValueError as e:
                raise MetadataError(f"{ptr}: not a valid pointer file: {e}") from e
        return {"version": self.store.active_version(app), "previous": None}

    def ensure_pointer(self, app: str) -> None:
        """Pin what serves now before any new version directory appears: without a
        pointer the store serves the highest version, which would be the untrialled one."""
        if not self.store.pointer_path(app).is_file():
            current = self.store.active_version(app)
            if current is not None:
                atomic_write_json(
                    self.store.pointer_path(app), {"version": current, "previous": None}
                )

    def activate(self, app: str, version: str) -> dict[str, Any]:
        """The atomic switch. Returns the pointer as it was (for undo). A first install
        writes the pointer too: it is what lets the store serve a fleet-staged version."""
        old = self.pointer(app)
        if old["version"] == version and self.store.pointer_path(app).is_file():
            return old
        previous = old["version"] if old["version"] != version else None
        new = {"version": version, "previous": previous}
        pause_point("switch")
        atomic_write_json(self.store.pointer_path(app), new)
        log.info("%s: %s is active (previous %s)", app, version, old["version"])
        return old

    def restore_pointer(self, app: str, old: dict[str, Any]) -> None:
        ptr = self.store.pointer_path(app)
        if old["version"] is None:  # undoing a first install: nothing served before
            ptr.unlink(missing_ok=True)
            fsync_dir(ptr.parent)
            return
        atomic_write_json(ptr, old)

    def rollback(self, app: str) -> tuple[str, str]:
        """Serve the previous version again; returns (from, to)."""
        ptr = self.pointer(app)
        cur, prev = ptr["version"], ptr["previous"]
        if not prev:
            raise MetadataError(f"{app}: no previous version to roll back to")
        if not (self.store.package_dir(app, prev) / "package.toml").is_file():
            raise MetadataError(f"{app}: previous version {prev} is no longer in the store")
        # previous: null, so a second rollback does not bounce back to the bad version.
        atomic_write_json(self.store.pointer_path(app), {"version": prev, "previous": None})
        log.info("%s: rolled back from %s to %s", app, cur, prev)
        return str(cur), str(prev)

    # ---- staging ------------------------------------------------------------------
    def stage(self, release: Release, variant_ids: str | Sequence[str]) -> Path:
        """Build the package tree from verified blobs (one variant, or the candidates the
        trial measures) and move it into the store."""
        app, version = release.application, release.version
        ids = [variant_ids] if isinstance(variant_ids, str) else list(variant_ids)
        self.ensure_pointer(app)
        tmp = self.staging / app / version
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        prefix = f"{app}/{version}/"
        placed: list[tuple[TargetFile, str]] = [(release.package_target, "package.toml")]
        if release.golden_target is not None:
            placed.append((release.golden_target, release.golden_target.path[len(prefix) :]))
        for variant_id in ids:
            vdir_rel = f"variants/{variant_id}/"
            vrel = release.variants[variant_id]
            placed.append((vrel.meta_target, vdir_rel + "variant.toml"))
            placed += [(t, vdir_rel + rel) for rel, t in vrel.files.items()]
        for target, rel in placed:
            dest = tmp / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise MetadataError(f"{target.path}: refusing a path outside the package: {rel}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.blob_path(target), dest)
            except OSError:
                shutil.copyfile(self.blob_path(target), dest)
        (tmp / STAGED_MARKER).write_text(",".join(ids))
        for d in sorted({p.parent for p in tmp.rglob("*")} | {tmp}, key=lambda p: -len(p.parts)):
            fsync_dir(d)
        final = self.store.package_dir(app, version)
        if final.exists():
            self._remove(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        return final

    def keep_only(self, pdir: Path, keep: AbstractSet[str], winner: str) -> None:
        """Drop every staged variant not in ``keep`` (the trial's measured winner and the
        lighter rungs kept for the governor); the staged marker names the winner."""
        variants = pdir / "variants"
        for vdir in variants.iterdir():
            if vdir.name not in keep and vdir.name != winner:
                shutil.rmtree(vdir)
        (pdir / STAGED_MARKER).write_text(winner)
        fsync_dir(variants)
        fsync_dir(pdir)

    def discard(self, app: str, version: str) -> None:
        """Remove a staged version that failed (never the active or previous one)."""
        ptr = self.pointer(app)
        if version in (ptr["version"], ptr["previous"]):
            return
        pdir = self.store.package_dir(app, version)
        if (pdir / STAGED_MARKER).exists():
            self._remove(pdir)

    def cleanup(self) -> list[str]:
        """At start: drop half-built staging trees, and versions the agent staged but
        never activated (a power cut mid-trial). Returns what was removed."""
        removed: list[str] = []
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        for app in self.store.applications():
            ptr = self.pointer(app)
            keep = {ptr["version"], ptr["previous"]}
            for version in self.store.versions(app):
                pdir = self.store.package_dir(app, version)
                if version not in keep and (pdir / STAGED_MARKER).exists():
                    self._remove(pdir)
                    removed.append(f"{app}/{version}")
        shutil.rmtree(self.fleet_dir / "trash", ignore_errors=True)
        return removed

    def _remove(self, pdir: Path) -> None:
        # Move into .fleet/trash/<unique>/ first (one rename) so a crash mid-delete never
        # leaves a half tree where the store would take it for a version.
        bin_dir = self.fleet_dir / "trash" / uuid.uuid4().hex
        bin_dir.mkdir(parents=True)
        os.replace(pdir, bin_dir / pdir.name)
        fsync_dir(pdir.parent)
        shutil.rmtree(bin_dir, ignore_errors=True)
