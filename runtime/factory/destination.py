"""Where a build's package goes: a new directory (``--out``) or a store (``--store``).

Either way the package is assembled in a staging directory on the destination's
filesystem and appears with one rename, after it validates: a failed or interrupted
build (Ctrl-C, SIGTERM and SIGHUP included) leaves nothing behind, and a build killed
outright (SIGKILL) leaves a directory that names its owner, which the next build there
removes (runtime/catalog/staging.py). The destination is checked before any
work starts, so an unwritable ``--out`` fails in a second, not after the build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from runtime.catalog import ModelPackage, Store, load_package
from runtime.catalog.staging import make_staging_dir, sweep_staging
from runtime.catalog.writer import install_package, verify_package
from runtime.errors import MetadataError
from runtime.factory.spec import BuildInputError


class Destination:
    """``stage()`` makes the staging directory; ``commit()`` moves it into place;
    ``discard()`` removes whatever is left (safe to call twice)."""

    def __init__(
        self, *, out: Path | None, store: Path | None, replace: bool, app: str, version: str
    ) -> None:
        if (out is None) == (store is None):
            raise BuildInputError("give exactly one of --out DIR and --store DIR")
        self.out = Path(out) if out is not None else None
        self.store = Store(Path(store)) if store is not None else None
        self.replace = replace
        self.app, self.version = app, version
        self.staged: Path | None = None

    def stage(self) -> Path:
        if self.out is not None:
            out = self.out
            if out.exists() and not (out.is_dir() and not any(out.iterdir())):
                raise BuildInputError(f"{out}: already exists; --out takes a new directory")
            parent = out.parent
        else:
            assert self.store is not None
            parent = self.store.root
            target = self.store.package_dir(self.app, self.version)
            if target.exists() and not self.replace:
                raise BuildInputError(
                    f"{target}: {self.app} {self.version} is already in the store (--replace)"
                )
        try:
            parent.mkdir(parents=True, exist_ok=True)
            sweep_staging(parent)  # what a killed build left (never a running one's)
            self.staged = make_staging_dir(parent, "build")
        except OSError as e:
            where = self.out if self.out is not None else parent
            raise BuildInputError(
                f"{where}: cannot write the package there: {e.strerror or e}"
            ) from e
        return self.staged

    def commit(self) -> ModelPackage:
        assert self.staged is not None
        staged, self.staged = self.staged, None
        try:
            os.chmod(staged, 0o755)  # mkdtemp's 0700 would hide the package from the daemon
            if self.store is not None:
                try:
                    return install_package(staged, self.store, replace=self.replace)
                except MetadataError as e:  # another process installed it meanwhile
                    raise BuildInputError(e.message) from e
            assert self.out is not None
            package = load_package(staged)
            verify_package(package)
            if self.out.is_dir():
                self.out.rmdir()  # the empty directory the check allowed
            os.rename(staged, self.out)
            return load_package(self.out)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def discard(self) -> None:
        if self.staged is not None:
            shutil.rmtree(self.staged, ignore_errors=True)
            self.staged = None
