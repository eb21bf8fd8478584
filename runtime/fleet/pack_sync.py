"""Knowledge packs delivered like models: the box's side, one cycle per pack.

After the applications (so an embedder the fleet updates is in place before the packs
that need it), for each pack in the store or in the signed metadata:

1. the newest release on this node's channel and rollout, newer than the active version
   and not marked bad;
2. the plan from the signed embedder identity alone (runtime.knowledge.intake ``plan``:
   use it, embed it again, or refuse it with the reason). A refused pack is not
   downloaded, not marked bad, and checked again next cycle: the box may serve its
   embedder by then;
3. its files downloaded (resumable) into the blob store models use, each checked against
   its signed length and sha256 (runtime.fleet.download ``fetch_verified``);
4. staged in ``<store>/_knowledge/.staging-fleet-*`` (hard links to the blobs) and
   checked against its manifest;
5. the trial (``PackHost.admit``: re-embedding when planned, the box's embedder checked
   against the pack, its golden questions' recall@k at or above the floor the manifest
   names);
6. moved into place with one rename, the pointer switched atomically, and the library
   told (``PackHost.activated``): it opens the new version beside the old and switches in
   one assignment, so a query in flight finishes on the version it started with.

A pack that fails its trial is marked bad and never retried; the active version keeps
serving. ``rollback(pack)`` serves the previous version again and marks the current one
bad. The state (``<state_dir>/fleet/packs.json``, the same stages as applications) is on
/status, /metrics and MQTT ``fleet/state`` beside the applications'.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

from runtime.catalog import version_key
from runtime.config import FleetSettings
from runtime.errors import HeadframeError, MetadataError
from runtime.fleet.download import Downloader, Progress, fetch_verified
from runtime.fleet.install import Installer
from runtime.fleet.releases import PACKS_PREFIX, PackRelease, in_rollout
from runtime.fleet.state import FleetState, Listener
from runtime.fleet.status import pack_status
from runtime.fleet.tufclient import FleetError, TrustedRepo
from runtime.knowledge.identity import EmbedderIdentity
from runtime.knowledge.intake import Admission, Plan, plan
from runtime.knowledge.pack import MANIFEST, Manifest, PackStore, read_manifest, verify

log = logging.getLogger(__name__)

STAGING = "fleet"  # staging directories: .staging-fleet-<owner>-... (catalog/staging.py)


class PackHost(Protocol):
    """What the box offers the pack sync (runtime.fleet.pack_host: the daemon's library
    and service, or the CLI's own); called on the agent's thread."""

    def served(self, dimensions: int) -> list[EmbedderIdentity]:
        """The embedding applications the box serves."""

    def admit(self, name: str, vdir: Path, manifest: Manifest, decided: Plan) -> Admission:
        """runtime.knowledge.intake.admit on the staged pack."""

    def activated(self, name: str) -> None:
        """The pointer of ``name`` changed: serve the version it names."""


class PackSync:
    def __init__(
        self,
        settings: FleetSettings,
        store_root: Path,
        state_dir: Path,
        installer: Installer,
        downloader: Downloader,
        host: PackHost | None,
        node_id: str,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.packs = PackStore(store_root)
        self.state = FleetState(Path(state_dir) / "packs.json")
        self.installer = installer
        self.downloader = downloader
        self.host = host
        self.node_id = node_id
        self.progress = progress

    def add_listener(self, fn: Listener) -> None:
        self.state.add_listener(fn)

    # ---- one cycle -----------------------------------------------------------------
    def sync(self, repo: TrustedRepo, *, window_open: bool) -> dict[str, str]:
        """Every pack once; pack -> "current", "updated", "deferred", "refused" or "failed"."""
        left = self.packs.clean_staging()
        if left:
            log.info("removed knowledge pack staging left by a stopped sync: %s", left)
        releases = repo.packs()
        outcomes = {}
        for name in sorted(set(self.packs.packs()) | set(releases)):
            try:
                outcomes[name] = self._sync_one(repo, name, releases.get(name, []), window_open)
            except FleetError:
                raise  # the repository itself: the agent reports it for everything
            except Exception as e:  # one pack's trouble (a full disk, say) stops no other
                log.exception("knowledge pack %s: the update failed", name)
                why = e.message if isinstance(e, HeadframeError) else f"{type(e).__name__}: {e}"
                self.state.update(name, stage="failed", reason=f"update failed: {why}")
                outcomes[name] = "failed"
        return outcomes

    def refused(self, reason: str) -> None:
        """The metadata was refused: every pack keeps what it serves, and says so."""
        for name in sorted(set(self.packs.packs()) | set(self.state.snapshot()["apps"])):
            active = self._active(name)
            if active is None:
                self.state.update(name, stage="failed", reason=reason)
            else:
                why = f"update refused, {active} keeps serving: {reason}"
                self.state.update(name, stage="refused", reason=why)

    def _active(self, name: str) -> str | None:
        try:
            return self.packs.pointer(name)["version"]
        except MetadataError as e:
            log.warning("knowledge pack %s: %s", name, e.message)
            return None

    def _candidate(
        self, name: str, active: str | None, releases: list[PackRelease]
    ) -> PackRelease | None:
        for r in reversed(releases):  # newest first
            if active is not None and version_key(r.version) <= version_key(active):
                return None
            if self.state.is_bad(name, r.version):
                continue
            pct = r.rollout_for(self.settings.channel)
            if pct > 0 and in_rollout(self.node_id, f"{PACKS_PREFIX}/{name}", pct):
                return r
        return None

    def _sync_one(
        self, repo: TrustedRepo, name: str, releases: list[PackRelease], window_open: bool
    ) -> str:
        active = self._active(name)
        release = self._candidate(name, active, releases)
        if release is None:
            self.state.update(
                name, stage="active" if active else "idle", pending=None, bytes_done=0,
                bytes_total=0,
                reason=f"{active} is current" if active else "nothing published for this node",
            )  # fmt: skip
            return "current"
        version = release.version
        keeps = f"; {active} keeps serving" if active else ""
        if self.host is None:
            self.state.update(name, stage="failed", pending=version, reason=f"{version}: this "
                              "agent has no embedding service to check a pack with")  # fmt: skip
            return "failed"
        decided = plan(
            release.embedder, self.host.served(release.embedder.dimensions),
            reembed=self.settings.reembed_packs, reembed_with=self.settings.reembed_with,
        )  # fmt: skip
        if decided.action == "refuse":
            self.state.update(name, stage="refused", pending=version,
                              reason=f"{version} refused: {decided.reason}{keeps}")  # fmt: skip
            return "refused"
        self.state.update(name, stage="downloading", pending=version,
                          reason=f"{version}: {decided.reason}")  # fmt: skip
        try:
            self._download(repo, name, release)
        except FleetError as e:
            self.state.update(name, stage="failed", reason=e.reason)
            return "failed"
        if active is not None and not window_open:
            self.state.update(name, stage="idle", reason=f"{version} downloaded and verified; "
                              f"waiting for the maintenance window "
                              f"{self.settings.maintenance_window}")  # fmt: skip
            return "deferred"
        return self._install(name, release, decided, keeps)

    def _download(self, repo: TrustedRepo, name: str, release: PackRelease) -> None:
        todo = [t for t in release.targets() if not self.installer.has_blob(t)]
        total = sum(t.length for t in todo)
        self.state.update(name, bytes_done=0, bytes_total=total)

        def tick(now: int) -> None:
            self.state.update(name, persist=False, bytes_done=now)
            if self.progress is not None:
                self.progress(f"{PACKS_PREFIX}/{name}", now, total)

        def verifying() -> None:
            self.state.update(name, stage="verifying", bytes_done=total)

        fetch_verified(self.downloader, self.installer, todo, repo.target_url, repo.opener(),
                       tick, verifying)  # fmt: skip

    def _install(self, name: str, release: PackRelease, decided: Plan, keeps: str) -> str:
        version = release.version
        self.state.update(name, stage="trial", reason=f"{version}: trial ({decided.reason})")
        with self.packs.staging(STAGING) as staged:
            try:
                manifest = self._stage(staged, release)
            except HeadframeError as e:
                return self._reject(name, version, f"staging failed: {e.message}{keeps}")
            try:
                admitted = self.host.admit(name, staged, manifest, decided)  # type: ignore[union-attr]
            except Exception as e:  # a crash in the trial is a failed trial, never a dead agent
                log.exception("trial of knowledge pack %s %s crashed", name, version)
                admitted = Admission(False, f"trial failed: {e}", manifest)
            if not admitted.ok:
                return self._reject(name, version, f"{version} rejected: {admitted.reason}{keeps}")
            self.packs.install(staged, replace=True)
        self.packs.set_active(name, version)
        self._tell(name)
        how = ""
        if decided.action == "reembed":
            how = f" (embedded again on this box with {admitted.manifest.embedder.describe()})"
        self.state.update(name, stage="active", pending=None, bytes_done=0, bytes_total=0,
                          reason=f"{version} active{how}; {admitted.reason}")  # fmt: skip
        return "updated"

    def _stage(self, staged: Path, release: PackRelease) -> Manifest:
        """The release's files linked from the blob store into ``staged``; its manifest,
        checked to be this release's and to match the files."""
        placed = [(MANIFEST, release.manifest_target), *release.files.items()]
        for rel, target in placed:
            if "/" in rel or rel in ("", ".", ".."):
                raise MetadataError(f"{target.path}: refusing a file name outside the pack")
            try:
                os.link(self.installer.blob_path(target), staged / rel)
            except OSError:
                shutil.copyfile(self.installer.blob_path(target), staged / rel)
        manifest = read_manifest(staged)
        if (manifest.pack, manifest.version) != (release.pack, release.version):
            raise MetadataError(f"{release.manifest_target.path}: the manifest names "
                                f"{manifest.pack} {manifest.version}")  # fmt: skip
        verify(staged, manifest)
        return manifest

    def _reject(self, name: str, version: str, reason: str) -> str:
        self.state.mark_bad(name, version, reason)
        self.state.update(name, stage="failed", pending=None, reason=reason)
        return "failed"

    def _tell(self, name: str) -> None:
        if self.host is None:
            return
        try:
            self.host.activated(name)
        except Exception:  # the library's own watch opens it at its next look
            log.exception("knowledge pack %s: the library could not switch now", name)

    # ---- operator actions and reporting --------------------------------------------
    def rollback(self, name: str) -> tuple[str, str]:
        """Serve the previous version; the one rolled back from is never retried."""
        frm, to = self.packs.rollback(name)
        self.state.mark_bad(name, frm, "rolled back by the operator")
        self.state.update(name, stage="rolled_back", pending=None, bytes_done=0, bytes_total=0,
                          reason=f"rolled back from {frm} to {to}")  # fmt: skip
        self._tell(name)
        return frm, to

    def status(self) -> dict[str, Any]:
        """Per pack: active, previous, pending, stage, reason, progress, bad versions."""
        return pack_status(self.packs, self.state)
