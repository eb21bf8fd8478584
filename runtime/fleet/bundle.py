"""Offline bundles for air-gapped sites: the repository's current state in one tar.

Export takes every root version (a box may need to walk a key rotation), the targets,
snapshot and timestamp metadata re-signed for the bundle with a longer expiry than the
online repository's (a bundle may travel for weeks), and every target file they name.

Import never extracts anything: ``Bundle`` opens the tar read-only, checks every member
before anything is read (only regular files, only the names an export writes, no
duplicates, a cap on their number and total size) and then serves the box's normal
sync as a repository: metadata and target files are read straight out of the tar with
``extractfile()``, through the same TUF checks (signatures, expiry, rollback), the same
length and sha256 checks and the same trial as online. A bundle is as untrusted as the
network, and no link or name in it can make the box write anywhere.
"""

from __future__ import annotations

import io
import logging
import re
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from tuf.api import exceptions as tufx

from runtime.errors import ConfigError
from runtime.fleet.publish import OFFLINE_EXPIRY, RepoWriter
from runtime.fleet.tufclient import LocalFetcher

log = logging.getLogger(__name__)

BUNDLE_URL = "bundle:/"
DEFAULT_MAX_BYTES = 64 * 1024**3  # a bundle may carry large language models
MAX_MEMBERS = 100_000
_METADATA = re.compile(r"^metadata/(?:[1-9][0-9]{0,9}\.(?:root|snapshot|targets)|timestamp)\.json$")
# A target path component: no leading dot (so no "." or ".."), no separators, no controls.
_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=@,-]{0,254}$")
_MAX_NAME = 1024
_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a named pipe",
    tarfile.CONTTYPE: "a contiguous file",
}


def export_bundle(
    repo_dir: Path, out: Path, keys_dir: Path, *, expires: timedelta = OFFLINE_EXPIRY
) -> list[str]:
    """Write ``out`` (a tar); returns the paths it holds, relative to the repository.

    The bundle's targets, snapshot and timestamp are signed anew (keys from
    ``keys_dir``) to expire after ``expires``; the online repository is not changed."""
    repo = Path(repo_dir)
    writer = RepoWriter(repo, keys_dir)
    signed = writer.offline_metadata(expires)
    consistent = writer.root.signed.consistent_snapshot
    meta = repo / "metadata"
    members = [f"metadata/{p.name}" for p in sorted(meta.glob("*.root.json"))]
    for path, info in writer.targets.signed.targets.items():
        dirname, sep, base = path.rpartition("/")
        stored = f"{dirname}{sep}{info.hashes['sha256']}.{base}" if consistent else path
        members.append(f"targets/{stored}")
    missing = [m for m in members if not (repo / m).is_file()]
    if missing:
        raise ConfigError(f"{repo}: repository is incomplete, missing {missing[:3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w") as tar:
        for m in members:
            tar.add(repo / m, arcname=m, recursive=False)
        for name, data in signed.items():
            header = tarfile.TarInfo(name)
            header.size, header.mode = len(data), 0o644
            tar.addfile(header, io.BytesIO(data))
    tmp.replace(out)
    names = members + list(signed)
    log.info("bundle %s: %d files, metadata expires in %s", out, len(names), expires)
    return names


def _refuse(bundle: Path, member: str, why: str) -> ConfigError:
    return ConfigError(f"{bundle}: refusing the bundle: member {member!r} {why}; nothing was read")


def _member_name(bundle: Path, m: tarfile.TarInfo) -> str:
    name = m.name.removeprefix("./")
    if len(name) > _MAX_NAME or "\\" in name:
        raise _refuse(bundle, m.name, "has an unsafe name")
    if _METADATA.match(name):
        return name
    parts = name.split("/")
    if parts[0] == "targets" and len(parts) > 1 and all(_COMPONENT.match(p) for p in parts[1:]):
        return name
    if name.startswith("/") or ".." in parts:
        raise _refuse(bundle, m.name, "points outside the bundle")
    raise _refuse(bundle, m.name, "is not a file a bundle holds (metadata/*.json, targets/...)")


def index_members(
    tar: tarfile.TarFile, bundle: Path, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[str, tarfile.TarInfo]:
    """Every member checked, before any content is read: name -> member. Directories
    are skipped (they carry nothing); anything else but a regular file refuses the
    whole bundle, as do unexpected names, duplicates, too many members or bytes."""
    found: dict[str, tarfile.TarInfo] = {}
    total = 0
    for count, m in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise ConfigError(f"{bundle}: refusing the bundle: more than {MAX_MEMBERS} members")
        if m.isdir():
            continue
        if not m.isreg() or m.issparse() or m.type == tarfile.CONTTYPE:
            kind = "a sparse file" if m.issparse() else _KINDS.get(m.type, "a special member")
            raise _refuse(bundle, m.name, f"is {kind}, not a regular file")
        name = _member_name(bundle, m)
        if name in found:
            raise _refuse(bundle, m.name, "appears twice")
        total += m.size
        if total > max_bytes:
            raise ConfigError(
                f"{bundle}: refusing the bundle: its files hold more than the "
                f"{max_bytes} bytes allowed (at member {m.name!r}); nothing was read"
            )
        found[name] = m
    return found


class Bundle(LocalFetcher):
    """An offline bundle opened for a sync: ``url`` is the repository it serves (pass
    it with the bundle itself as the fetcher), ``open`` reads one member."""

    url = BUNDLE_URL

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__()
        self.path = Path(path)
        try:
            self._tar = tarfile.open(self.path, "r:*")  # noqa: SIM115 (closed by close())
        except (OSError, tarfile.TarError) as e:
            raise ConfigError(f"{self.path}: not a readable bundle: {e}") from e
        try:
            self.members = index_members(self._tar, self.path, max_bytes)
        except (OSError, tarfile.TarError) as e:
            self._tar.close()
            raise ConfigError(f"{self.path}: not a readable bundle: {e}") from e
        except BaseException:
            self._tar.close()
            raise
        if "metadata/timestamp.json" not in self.members:
            self._tar.close()
            raise ConfigError(f"{self.path}: no metadata/timestamp.json inside; not a bundle")

    def open(self, url: str) -> IO[bytes]:
        name = url.removeprefix(self.url)
        member = self.members.get(name)
        if member is None:
            raise tufx.DownloadHTTPError(f"{self.path}: {name} is not in the bundle", 404)
        f = self._tar.extractfile(member)
        assert f is not None  # a regular file, checked at open
        return f

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
