"""Knowledge packs as signed targets: the cloud side of delivering a pack like a model.

A pack version directory (what ``headframe knowledge build`` installs under
``<store>/_knowledge/<pack>/<version>/``, or a copy of it) is published as one target
per file under ``_knowledge/<pack>/<version>/``: its ``manifest.json`` carries the
release's custom metadata (the embedder's identity, chunks, the files, the golden
questions' k and floor, channels; integers, strings and booleans only, as canonical JSON
needs), every other file names its pack, version and path. The box reads them back with
runtime.fleet.releases ``parse_pack_releases`` and checks each file's length and sha256
against its signed target before it uses a byte of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tuf.api.metadata import TargetFile

from runtime.errors import ConfigError, MetadataError
from runtime.fleet.releases import PACKS_PREFIX
from runtime.knowledge.pack import MANIFEST, Manifest, read_manifest, verify


class Writer(Protocol):
    """What adding a pack needs of runtime.fleet.publish.RepoWriter."""

    def signed_target(self, path: str) -> TargetFile | None: ...

    def channels_for(
        self, old: TargetFile | None, files: list[tuple[str, Path]], what: str
    ) -> dict[str, int]: ...

    def add_target(self, target_path: str, local: Path, custom: dict[str, Any]) -> TargetFile: ...


def is_pack_dir(path: Path) -> bool:
    """A knowledge pack version (its manifest.json), not a model package."""
    return (Path(path) / MANIFEST).is_file() and not (Path(path) / "package.toml").is_file()


def add_pack(writer: Writer, vdir: Path, channel: str, rollout: int) -> Manifest:
    """Add every file of the pack in ``vdir`` as a target and offer it on ``channel`` to
    ``rollout`` percent of nodes. Its files must match its manifest; re-publishing the
    same bytes only changes the channel entry, other bytes under a published version are
    refused."""
    if not 0 <= rollout <= 100:
        raise ConfigError(f"--rollout: {rollout} is not a percentage (0..100)")
    vdir = Path(vdir)
    manifest = read_manifest(vdir)
    verify(vdir, manifest)
    if manifest.reembedded_from is not None:
        raise MetadataError(
            f"{vdir}: this copy of {manifest.pack} {manifest.version} was embedded again on a "
            "box; publish the pack that knowledge build made"
        )
    prefix = f"{PACKS_PREFIX}/{manifest.pack}/{manifest.version}"
    base = {"pack": manifest.pack, "version": manifest.version}
    files = [(f"{prefix}/{name}", vdir / name) for name in sorted(manifest.files)]
    entry = f"{prefix}/{MANIFEST}"
    channels = writer.channels_for(
        writer.signed_target(entry),
        [*files, (entry, vdir / MANIFEST)],
        f"knowledge pack {manifest.pack} {manifest.version}",
    )
    channels[channel] = rollout
    for target, local in files:
        writer.add_target(target, local, {**base, "kind": "pack_file", "path": local.name})
    custom: dict[str, Any] = {
        **base,
        "kind": "pack",
        "embedder": manifest.embedder.model_dump(mode="json"),
        "chunks": manifest.chunks,
        "files": sorted(manifest.files),
        "channels": channels,
    }
    if manifest.golden is not None:
        ints = {"questions", "k", "recall_floor_bp", "recall_bp"}
        custom["golden"] = manifest.golden.model_dump(include=ints)
    writer.add_target(entry, vdir / MANIFEST, custom)
    return manifest
