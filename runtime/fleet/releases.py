"""What the signed targets metadata offers: releases, their variants and files.

The publisher writes, and the box reads, one ``custom`` object per target under the key
``headframe`` (integers only: TUF's canonical JSON has no floats)::

    <app>/<version>/package.toml          {"kind": "package", "application", "version",
                                           "package": PackageMeta, "variants": [ids],
                                           "channels": {"stable": 20, ...}}
    <app>/<version>/<golden file>         {"kind": "golden", "application", "version"}
    <app>/<version>/<variant>/variant.toml {"kind": "variant", ..., "variant", "meta": VariantMeta}
    <app>/<version>/<variant>/<file>      {"kind": "file", ..., "variant", "path": relpath}

``channels`` maps a channel to the rollout percentage (0..100) of nodes that take the
release. Knowledge packs have their own targets (below, ``parse_pack_releases``).
Everything here is pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from tuf.api.metadata import TargetFile

from runtime.catalog import PackageMeta, VariantMeta, version_key
from runtime.knowledge.identity import EmbedderIdentity

CUSTOM_KEY = "headframe"
STABLE = "stable"


@dataclass(frozen=True)
class VariantRelease:
    meta: VariantMeta
    meta_target: TargetFile  # variant.toml
    files: dict[str, TargetFile]  # relpath -> target


@dataclass(frozen=True)
class Release:
    """One published version of one application, as the signed metadata describes it."""

    application: str
    version: str
    package: PackageMeta
    package_target: TargetFile  # package.toml
    channels: dict[str, int]
    variants: dict[str, VariantRelease] = field(default_factory=dict)
    golden_target: TargetFile | None = None

    def rollout_for(self, channel: str) -> int:
        """Percentage of nodes on ``channel`` that take this release.

        Stable releases are offered to every channel; a channel's own entry wins."""
        return channel_rollout(self.channels, channel)

    def targets_for(self, variant_id: str) -> list[TargetFile]:
        """Every target the box downloads to install this release with one variant."""
        v = self.variants[variant_id]
        out = [self.package_target, v.meta_target, *v.files.values()]
        if self.golden_target is not None:
            out.append(self.golden_target)
        return out


def rollout_bucket(node_id: str, application: str) -> int:
    """A stable number in 0..9999 for this node and application.

    Raising a release's percentage only ever adds nodes (the bucket does not depend on
    the version), so a node that took 1.1 at 20% is still in at 50%.
    """
    digest = hashlib.sha256(f"{application}\0{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


def in_rollout(node_id: str, application: str, percent: int) -> bool:
    return rollout_bucket(node_id, application) < percent * 100


def _custom(t: TargetFile) -> dict[str, Any] | None:
    c = t.custom
    if isinstance(c, Mapping) and isinstance(c.get(CUSTOM_KEY), Mapping):
        return dict(c[CUSTOM_KEY])
    return None


class ReleaseError(ValueError):
    """The signed metadata is well signed but its headframe content is malformed."""


def parse_releases(targets: Mapping[str, TargetFile]) -> dict[str, list[Release]]:
    """application -> releases (oldest first). Malformed releases are skipped with no
    exception only if they are incomplete (a variant without its files); a custom
    object that fails validation raises ReleaseError naming the target."""
    packages: dict[tuple[str, str], dict[str, Any]] = {}
    for path, t in targets.items():
        c = _custom(t)
        if c is None:
            continue
        key = (str(c.get("application")), str(c.get("version")))
        entry = packages.setdefault(key, {"variants": {}, "files": {}})
        kind = c.get("kind")
        try:
            if kind == "package":
                entry["package"] = (PackageMeta.model_validate(c["package"]), t, c)
            elif kind == "golden":
                entry["golden"] = t
            elif kind == "variant":
                entry["variants"][c["variant"]] = (VariantMeta.model_validate(c["meta"]), t)
            elif kind == "file":
                entry["files"].setdefault(c["variant"], {})[c["path"]] = t
        except (KeyError, ValidationError) as e:
            raise ReleaseError(f"target {path}: bad headframe metadata: {e}") from e

    out: dict[str, list[Release]] = {}
    for (app, version), entry in packages.items():
        if "package" not in entry:
            continue
        pmeta, ptarget, pc = entry["package"]
        if (pmeta.application, pmeta.version) != (app, version):
            raise ReleaseError(f"target {ptarget.path}: custom names {app} {version} but "
                               f"its package is {pmeta.application} {pmeta.version}")  # fmt: skip
        variants: dict[str, VariantRelease] = {}
        for vid, (vmeta, vtarget) in entry["variants"].items():
            files = entry["files"].get(vid, {})
            # Only the files the (validated, relative) variant metadata lists are taken.
            listed = {f.path for f in vmeta.files}
            if listed <= set(files):
                variants[vid] = VariantRelease(vmeta, vtarget, {p: files[p] for p in listed})
        if not variants:
            continue
        channels = {str(k): int(v) for k, v in dict(pc.get("channels", {})).items()}
        release = Release(app, version, pmeta, ptarget, channels, variants, entry.get("golden"))
        out.setdefault(app, []).append(release)
    for releases in out.values():
        releases.sort(key=lambda r: version_key(r.version))
    return out


# ---- knowledge packs ------------------------------------------------------------------
# A pack is published under ``_knowledge/<pack>/<version>/`` (an application's name never
# starts with "_"): its manifest.json with {"kind": "pack", "pack", "version", "embedder":
# the embedder's identity, "chunks", "files": [names], "golden": {questions, k,
# recall_floor_bp, recall_bp} (when built with golden questions), "channels"}, and each
# file it lists with {"kind": "pack_file", "pack", "version", "path"}.
PACKS_PREFIX = "_knowledge"


@dataclass(frozen=True)
class PackRelease:
    """One published version of one knowledge pack, as the signed metadata describes it."""

    pack: str
    version: str
    embedder: EmbedderIdentity
    chunks: int
    manifest_target: TargetFile
    files: dict[str, TargetFile]
    channels: dict[str, int]
    golden: dict[str, int] | None = None

    def rollout_for(self, channel: str) -> int:
        return channel_rollout(self.channels, channel)

    def targets(self) -> list[TargetFile]:
        return [self.manifest_target, *self.files.values()]


def channel_rollout(channels: Mapping[str, int], channel: str) -> int:
    """Stable releases are offered to every channel; a channel's own entry wins."""
    if channel in channels:
        return channels[channel]
    return channels.get(STABLE, 0)


def parse_pack_releases(targets: Mapping[str, TargetFile]) -> dict[str, list[PackRelease]]:
    """pack -> releases (oldest first). A release missing a file its manifest target
    lists is skipped; a malformed custom object raises ReleaseError naming the target."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, t in targets.items():
        c = _custom(t)
        if c is None or c.get("kind") not in ("pack", "pack_file"):
            continue
        key = (str(c.get("pack")), str(c.get("version")))
        entry = found.setdefault(key, {"files": {}})
        try:
            if c["kind"] == "pack":
                identity = EmbedderIdentity.model_validate(c["embedder"])
                golden = dict(c["golden"]) if c.get("golden") else None
                names = [str(f) for f in c["files"]]
                channels = dict(c.get("channels", {}))
                entry["pack"] = (t, identity, int(c["chunks"]), names, golden, channels)
            else:
                entry["files"][str(c["path"])] = t
        except (KeyError, TypeError, ValueError, ValidationError) as e:
            raise ReleaseError(f"target {path}: bad headframe pack metadata: {e}") from e
    out: dict[str, list[PackRelease]] = {}
    for (pack, version), entry in found.items():
        if "pack" not in entry:
            continue
        target, identity, chunks, names, golden, channels = entry["pack"]
        if not set(names) <= set(entry["files"]):
            continue
        release = PackRelease(
            pack, version, identity, chunks, target, {n: entry["files"][n] for n in names},
            {str(k): int(v) for k, v in channels.items()}, golden,
        )  # fmt: skip
        out.setdefault(pack, []).append(release)
    for releases in out.values():
        releases.sort(key=lambda r: version_key(r.version))
    return out
