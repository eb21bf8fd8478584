"""Offline bundles for air-gapped sites: the repository's current state in one tar.

Export takes every root version (a box may need to walk a key rotation), the current
timestamp, snapshot and targets metadata, and every target file they name. Import
unpacks into a private temporary directory and runs the box's normal sync against it
as a ``file://`` repository: the same TUF checks (signatures, expiry, rollback), the
same length and sha256 checks, the same trial. A bundle is as untrusted as the network.
"""

from __future__ import annotations

import json
import logging
import tarfile
from pathlib import Path

from runtime.errors import ConfigError

log = logging.getLogger(__name__)


def export_bundle(repo_dir: Path, out: Path) -> list[str]:
    """Write ``out`` (a tar); returns the paths it holds, relative to the repository."""
    repo = Path(repo_dir)
    meta = repo / "metadata"
    try:
        timestamp = json.loads((meta / "timestamp.json").read_text())
        snap_v = timestamp["signed"]["meta"]["snapshot.json"]["version"]
        snapshot = json.loads((meta / f"{snap_v}.snapshot.json").read_text())
        targets_v = snapshot["signed"]["meta"]["targets.json"]["version"]
        targets = json.loads((meta / f"{targets_v}.targets.json").read_text())
        root = json.loads((meta / "root.json").read_text())
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{repo}: not a headframe/TUF repository: {e}") from e
    consistent = root["signed"].get("consistent_snapshot", False)
    names = sorted(p.name for p in meta.glob("*.root.json"))
    names += ["timestamp.json", f"{snap_v}.snapshot.json", f"{targets_v}.targets.json"]
    members = [f"metadata/{n}" for n in names]
    for path, info in targets["signed"]["targets"].items():
        dirname, sep, base = path.rpartition("/")
        stored = f"{dirname}{sep}{info['hashes']['sha256']}.{base}" if consistent else path
        members.append(f"targets/{stored}")
    missing = [m for m in members if not (repo / m).is_file()]
    if missing:
        raise ConfigError(f"{repo}: repository is incomplete, missing {missing[:3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tarfile.open(tmp, "w") as tar:
        for m in members:
            tar.add(repo / m, arcname=m, recursive=False)
    tmp.replace(out)
    log.info("bundle %s: %d files", out, len(members))
    return members


def unpack_bundle(bundle: Path, into: Path) -> Path:
    """Extract safely (no absolute paths, links or escapes) and return the repo root."""
    try:
        with tarfile.open(bundle, "r") as tar:
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError) as e:
        raise ConfigError(f"{bundle}: not a readable bundle: {e}") from e
    if not (into / "metadata" / "timestamp.json").is_file():
        raise ConfigError(f"{bundle}: no metadata/timestamp.json inside; not a bundle")
    return into
