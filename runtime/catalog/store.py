"""The local model store and its active pointer: which version of an application serves.

The pointer (``<app>/active.json``) is read here and written here only (``set_active``):
the fleet installer, a rollback and the CLI all go through this module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from runtime.catalog.package import FLEET_STAGED_MARKER, ModelPackage, load_package
from runtime.errors import MetadataError


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key for versions: numeric parts numerically, so 1.10 > 1.9."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+-]", version))


class Store:
    """The local model store: a directory of ``<app>/<version>/`` package trees.

    Which version of an app serves is in ``<app>/active.json`` ({"version": ...,
    "previous": ...}), written atomically by the fleet installer on every switch, the
    first install included. Without it (or when it names a version that is gone) the
    highest version serves that was put there by hand, ``models add`` or the demo: a
    version the fleet staged (``FLEET_STAGED_MARKER`` in its directory) serves only
    once the pointer names it, which it does only after the version passed its trial.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def applications(self) -> list[str]:
        if not self.root.is_dir():
            return []
        # Dot-names are staging and trash directories of installers, never applications.
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and self.versions(p.name)
        )

    def versions(self, app: str) -> list[str]:
        adir = self.root / app
        if not adir.is_dir():
            return []
        found = [
            p.name
            for p in adir.iterdir()
            if not p.name.startswith(".") and (p / "package.toml").is_file()
        ]
        return sorted(found, key=version_key)

    def package_dir(self, app: str, version: str) -> Path:
        return self.root / app / version

    def load(self, app: str, version: str | None = None) -> ModelPackage:
        """The package for ``app`` at ``version`` (default: the active one)."""
        version = version or self.active_version(app)
        if version is None:
            raise MetadataError(f"{self.root}: no application {app!r} in the store")
        pdir = self.package_dir(app, version)
        if not (pdir / "package.toml").is_file():
            raise MetadataError(f"{pdir}: no version {version!r} of {app!r} in the store")
        return load_package(pdir)

    def pointer_path(self, app: str) -> Path:
        return self.root / app / "active.json"

    def active_version(self, app: str) -> str | None:
        ptr = self.pointer_path(app)
        if ptr.is_file():
            try:
                version = json.loads(ptr.read_text())["version"]
            except (ValueError, KeyError, TypeError) as e:
                raise MetadataError(f"{ptr}: not a valid pointer file: {e}") from e
            if (self.package_dir(app, version) / "package.toml").is_file():
                return str(version)
        # Never fall back to a version that is only staged: it may have failed its trial.
        versions = [
            v for v in self.versions(app)
            if not (self.package_dir(app, v) / FLEET_STAGED_MARKER).exists()
        ]  # fmt: skip
        return versions[-1] if versions else None
