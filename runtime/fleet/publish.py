"""The cloud side: model packages (and knowledge packs) -> a TUF repository of plain
static files.

Repository layout (serve it from any static HTTP server, CDN or bucket)::

    <repo>/metadata/1.root.json, 2.root.json ...   every root version (clients walk them)
    <repo>/metadata/root.json                       the newest root (for the operator)
    <repo>/metadata/<N>.targets.json, <N>.snapshot.json, timestamp.json
    <repo>/targets/<app>/<version>/<sha256>.package.toml
    <repo>/targets/<app>/<version>/<variant>/<sha256>.<file>
    <repo>/targets/_knowledge/<pack>/<version>/<sha256>.<file>   (runtime.fleet.pack_publish)

Consistent snapshots are on: metadata and targets are written under new names and only
``timestamp.json`` is replaced (last, atomically), so a box or a CDN edge that reads
while a publish runs always sees one complete, consistent state. The unversioned
``targets.json``/``snapshot.json`` beside them are the publisher's own working copies.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Role,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from runtime.catalog import ModelPackage, load_package
from runtime.errors import ConfigError, MetadataError
from runtime.files import atomic_write_bytes
from runtime.fleet import keys as keymod
from runtime.fleet.releases import CUSTOM_KEY
from runtime.knowledge.pack import Manifest

log = logging.getLogger(__name__)

ROOT_EXPIRY = timedelta(days=365)
# Targets and snapshot: re-signed at each publish (snapshot also at each re-sign).
DEFAULT_EXPIRY = timedelta(days=30)
# The timestamp is what tells a box the repository is fresh: a short life bounds how long
# a frozen or replayed repository can hold an online box back. Re-sign it daily.
TIMESTAMP_EXPIRY = timedelta(days=2)
# Offline bundles travel to air-gapped sites: their metadata is signed for longer.
OFFLINE_EXPIRY = timedelta(days=90)
_DURATION = re.compile(r"^(-?\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expires(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600s`` or an ISO date/time (UTC if naive)."""
    m = _DURATION.match(text.strip())
    if m:
        return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"--expires: {text!r} is neither a duration (30d) nor an ISO date") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when - datetime.now(UTC)


def _no_floats(value: Any, where: str) -> None:
    # Canonical JSON (what TUF signs) has no floats; fail at publish, not on the box.
    if isinstance(value, float):
        raise MetadataError(f"{where}: floats cannot go into signed metadata; use integers")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_floats(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _no_floats(v, f"{where}[{i}]")


def _expiry(delta: timedelta) -> datetime:
    return (datetime.now(UTC) + delta).replace(microsecond=0)


class RepoWriter:
    """Opens (or creates) a repository and signs changes with the keys in ``keys_dir``."""

    def __init__(self, repo_dir: Path, keys_dir: Path) -> None:
        self.repo = Path(repo_dir)
        self.keys_dir = Path(keys_dir)
        self.meta_dir = self.repo / "metadata"
        self.targets_dir = self.repo / "targets"
        self._serializer = JSONSerializer(compact=False)
        self._unwritten: set[str] = set()
        if (self.meta_dir / "root.json").is_file():
            self.root: Metadata[Root] = Metadata[Root].from_file(str(self.meta_dir / "root.json"))
            self.targets: Metadata[Targets] = Metadata[Targets].from_file(
                str(self.meta_dir / "targets.json")
            )
            self.snapshot: Metadata[Snapshot] = Metadata[Snapshot].from_file(
                str(self.meta_dir / "snapshot.json")
            )
            self.timestamp: Metadata[Timestamp] = Metadata[Timestamp].from_file(
                str(self.meta_dir / "timestamp.json")
            )
            self._check_keys_match()
        else:
            self._init_repo()

    # ---- set-up ---------------------------------------------------------------------
    def _init_repo(self) -> None:
        log.info("creating a new repository in %s", self.repo)
        root = Root(expires=_expiry(ROOT_EXPIRY), consistent_snapshot=True)
        for role in keymod.ROLES:
            root.roles[role] = Role([], threshold=1)
            root.add_key(keymod.load_public_key(self.keys_dir, role), role)
        self.root = Metadata(root)
        self.root.sign(keymod.load_signer(self.keys_dir, "root"))
        atomic_write_bytes(self.meta_dir / "1.root.json", self.root.to_bytes(self._serializer))
        atomic_write_bytes(self.meta_dir / "root.json", self.root.to_bytes(self._serializer))
        # Version 1 of each is written by the first commit (no bump for these).
        self._unwritten = {"targets", "snapshot", "timestamp"}
        self.targets = Metadata(Targets(version=1, expires=_expiry(DEFAULT_EXPIRY)))
        self.snapshot = Metadata(Snapshot(version=1, expires=_expiry(DEFAULT_EXPIRY)))
        self.timestamp = Metadata(Timestamp(version=1, expires=_expiry(TIMESTAMP_EXPIRY)))

    def _check_keys_match(self) -> None:
        for role in ("targets", "snapshot", "timestamp"):
            key = keymod.load_public_key(self.keys_dir, role)
            if key.keyid not in self.root.signed.roles[role].keyids:
                raise ConfigError(
                    f"{self.keys_dir}: the {role} key is not the one this repository's root trusts"
                )

    # ---- content --------------------------------------------------------------------
    def add_target(self, target_path: str, local: Path, custom: dict[str, Any]) -> TargetFile:
        _no_floats(custom, target_path)
        tf = TargetFile.from_file(target_path, str(local), ["sha256"])
        tf.unrecognized_fields["custom"] = {CUSTOM_KEY: custom}
        digest = tf.hashes["sha256"]
        dirname, _, basename = target_path.rpartition("/")
        dest = self.targets_dir / dirname / f"{digest}.{basename}"
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp")
            shutil.copyfile(local, tmp)
            os.replace(tmp, dest)
        self.targets.signed.targets[target_path] = tf
        return tf

    def channels_for(
        self, old: TargetFile | None, files: list[tuple[str, Path]], what: str
    ) -> dict[str, int]:
        """The channels a release is offered on so far (none when ``old``, its signed
        entry target, is None). Re-publishing the same bytes keeps them; other bytes under
        a published version are refused (MetadataError)."""
        if old is None:
            return {}
        same = all(
            self.targets.signed.targets.get(t) is not None
            and self.targets.signed.targets[t].hashes
            == TargetFile.from_file(t, str(local), ["sha256"]).hashes
            for t, local in files
        )
        if not same:
            raise MetadataError(
                f"{what} is already published with different content; "
                "publish it under a new version"
            )
        return dict(old.custom[CUSTOM_KEY].get("channels", {}))

    def signed_target(self, path: str) -> TargetFile | None:
        return self.targets.signed.targets.get(path)

    def published(self, app: str, version: str) -> TargetFile | None:
        return self.targets.signed.targets.get(f"{app}/{version}/package.toml")

    def add_package(self, package: ModelPackage, channel: str, rollout: int) -> list[str]:
        """Add every file of ``package`` as a target and offer it on ``channel`` to
        ``rollout`` percent of nodes. Re-publishing identical content only changes the
        channel entry; different content under a published version is refused."""
        if not 0 <= rollout <= 100:
            raise ConfigError(f"--rollout: {rollout} is not a percentage (0..100)")
        app, version = package.application, package.version
        prefix = f"{app}/{version}"
        files: list[tuple[str, Path, dict[str, Any]]] = []
        base = {"application": app, "version": version}
        variant_ids = [v.id for v in package.variants]
        if package.meta.golden is not None:
            files.append(
                (
                    f"{prefix}/{package.meta.golden.file}",
                    package.path / package.meta.golden.file,
                    {**base, "kind": "golden"},
                )
            )
        for v in package.variants:
            vmeta = v.meta.model_dump(mode="json", exclude_none=True)
            files.append(
                (
                    f"{prefix}/{v.id}/variant.toml",
                    v.path / "variant.toml",
                    {**base, "kind": "variant", "variant": v.id, "meta": vmeta},
                )
            )
            for fe in v.meta.files:
                files.append(
                    (
                        f"{prefix}/{v.id}/{fe.path}",
                        v.path / fe.path,
                        {**base, "kind": "file", "variant": v.id, "path": fe.path},
                    )
                )
        for _, local, _ in files:
            if not local.is_file():
                raise MetadataError(f"{local}: listed in the package but missing")

        channels = self.channels_for(
            self.published(app, version), [(t, local) for t, local, _ in files], f"{app} {version}"
        )
        channels[channel] = rollout
        for target_path, local, custom in files:
            self.add_target(target_path, local, custom)
        # The picture contract holds floats (scale, mean, std), which canonical JSON cannot;
        # the box needs it only from package.toml itself, a target signed by its hash.
        pmeta = package.meta.model_dump(mode="json", exclude_none=True, exclude={"images"})
        self.add_target(
            f"{prefix}/package.toml",
            package.path / "package.toml",
            {
                **base,
                "kind": "package",
                "package": pmeta,
                "variants": variant_ids,
                "channels": channels,
            },
        )
        return [t for t, _, _ in files] + [f"{prefix}/package.toml"]

    def _bump(self, signed: Targets | Snapshot | Timestamp, role: str) -> None:
        if role in self._unwritten:
            self._unwritten.discard(role)
        else:
            signed.version += 1

    # ---- signing --------------------------------------------------------------------
    def commit(
        self,
        expires: timedelta = DEFAULT_EXPIRY,
        *,
        targets_changed: bool = True,
        timestamp_expires: timedelta = TIMESTAMP_EXPIRY,
    ) -> None:
        """Sign and write new targets (if changed), snapshot and timestamp, in the order
        that keeps readers consistent: targets, snapshot, then timestamp last.
        ``expires`` is for targets and snapshot, ``timestamp_expires`` for the timestamp."""
        if targets_changed or "targets" in self._unwritten:
            self._bump(self.targets.signed, "targets")
            self.targets.signed.expires = _expiry(expires)
            self.targets.sign(keymod.load_signer(self.keys_dir, "targets"))
            data = self.targets.to_bytes(self._serializer)
            atomic_write_bytes(self.meta_dir / f"{self.targets.signed.version}.targets.json", data)
            atomic_write_bytes(self.meta_dir / "targets.json", data)
            self.snapshot.signed.meta["targets.json"] = MetaFile(
                version=self.targets.signed.version
            )
        self._bump(self.snapshot.signed, "snapshot")
        self.snapshot.signed.expires = _expiry(expires)
        self.snapshot.sign(keymod.load_signer(self.keys_dir, "snapshot"))
        sdata = self.snapshot.to_bytes(self._serializer)
        atomic_write_bytes(self.meta_dir / f"{self.snapshot.signed.version}.snapshot.json", sdata)
        atomic_write_bytes(self.meta_dir / "snapshot.json", sdata)
        self.timestamp.signed.snapshot_meta = MetaFile.from_data(
            self.snapshot.signed.version, sdata, ["sha256"]
        )
        self.resign_timestamp(timestamp_expires)

    def offline_metadata(self, expires: timedelta = OFFLINE_EXPIRY) -> dict[str, bytes]:
        """Targets, snapshot and timestamp over the current content, each one version
        above the repository's and signed to expire after ``expires``, for an offline
        bundle only: nothing is written here, the online repository keeps its short
        timestamp. Returns bundle member name -> bytes."""
        if "targets" in self._unwritten:
            raise ConfigError(f"{self.repo}: nothing is published yet; publish a package first")
        when = _expiry(expires)
        if when > self.root.signed.expires:
            raise ConfigError(
                f"--expires: {when:%Y-%m-%d} is after the root metadata expires "
                f"({self.root.signed.expires:%Y-%m-%d}); choose a shorter bundle expiry"
            )
        ser = self._serializer
        targets = Metadata[Targets].from_bytes(self.targets.to_bytes(ser))
        snapshot = Metadata[Snapshot].from_bytes(self.snapshot.to_bytes(ser))
        timestamp = Metadata[Timestamp].from_bytes(self.timestamp.to_bytes(ser))
        targets.signed.version += 1
        targets.signed.expires = when
        targets.sign(keymod.load_signer(self.keys_dir, "targets"))
        tdata = targets.to_bytes(ser)
        snapshot.signed.version += 1
        snapshot.signed.expires = when
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        snapshot.sign(keymod.load_signer(self.keys_dir, "snapshot"))
        sdata = snapshot.to_bytes(ser)
        timestamp.signed.version += 1
        timestamp.signed.expires = when
        timestamp.signed.snapshot_meta = MetaFile.from_data(
            snapshot.signed.version, sdata, ["sha256"]
        )
        timestamp.sign(keymod.load_signer(self.keys_dir, "timestamp"))
        return {
            f"metadata/{targets.signed.version}.targets.json": tdata,
            f"metadata/{snapshot.signed.version}.snapshot.json": sdata,
            "metadata/timestamp.json": timestamp.to_bytes(ser),
        }

    def resign_timestamp(self, expires: timedelta = TIMESTAMP_EXPIRY) -> None:
        """A new timestamp over the same snapshot: run it (from cron) more often than
        the expiry so boxes can tell a fresh repository from a frozen one."""
        self._bump(self.timestamp.signed, "timestamp")
        self.timestamp.signed.expires = _expiry(expires)
        self.timestamp.sign(keymod.load_signer(self.keys_dir, "timestamp"))
        atomic_write_bytes(
            self.meta_dir / "timestamp.json", self.timestamp.to_bytes(self._serializer)
        )


@dataclass
class Published:
    """What one publish added: model packages and knowledge packs (their manifests)."""

    packages: list[ModelPackage] = field(default_factory=list)
    packs: list[Manifest] = field(default_factory=list)


def publish_all(
    repo_dir: Path,
    keys_dir: Path,
    dirs: Iterable[Path],
    *,
    channel: str = "stable",
    rollout: int = 100,
    expires: timedelta = DEFAULT_EXPIRY,
    timestamp_expires: timedelta = TIMESTAMP_EXPIRY,
) -> Published:
    """Add model packages and knowledge pack versions (a directory holding a pack's
    manifest.json: runtime.fleet.pack_publish), possibly none: then only re-sign snapshot
    and timestamp, the daily step that keeps online boxes accepting the repository."""
    from runtime.fleet.pack_publish import add_pack, is_pack_dir

    writer = RepoWriter(repo_dir, keys_dir)
    dirs = [Path(d) for d in dirs]
    out = Published(packages=[load_package(d) for d in dirs if not is_pack_dir(d)])
    for p in out.packages:
        writer.add_package(p, channel, rollout)
        log.info("published %s %s to %s at %d%%", p.application, p.version, channel, rollout)
    for d in dirs:
        if is_pack_dir(d):
            manifest = add_pack(writer, d, channel, rollout)
            out.packs.append(manifest)
            log.info("published knowledge pack %s %s to %s at %d%%", manifest.pack,
                     manifest.version, channel, rollout)  # fmt: skip
    changed = bool(out.packages or out.packs)
    writer.commit(expires, targets_changed=changed, timestamp_expires=timestamp_expires)
    return out


def publish(
    repo_dir: Path,
    keys_dir: Path,
    package_dirs: Iterable[Path],
    *,
    channel: str = "stable",
    rollout: int = 100,
    expires: timedelta = DEFAULT_EXPIRY,
    timestamp_expires: timedelta = TIMESTAMP_EXPIRY,
) -> list[ModelPackage]:
    """``publish_all`` for model packages; returns them."""
    return publish_all(
        repo_dir, keys_dir, package_dirs, channel=channel, rollout=rollout, expires=expires,
        timestamp_expires=timestamp_expires,
    ).packages  # fmt: skip
