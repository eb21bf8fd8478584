"""The FleetAgent: one loop that keeps this box's models current and safe.

A cycle: verify the repository's metadata (TUF) -> per application, the newest release
on this node's channel that this node is in the rollout for, not marked bad, not
below ``min_versions`` -> choose the variant from the metadata alone -> download only
its files (resumable) -> verify -> stage -> trial -> switch the pointer -> hot swap.
Anything that fails leaves the old version serving and says why in the state. Then the
knowledge packs, delivered the same way (runtime.fleet.pack_sync).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

from tuf.ngclient import FetcherInterface

from runtime.catalog import ModelPackage, PackageMeta, Store, VariantMeta, load_package, version_key
from runtime.config import FleetSettings
from runtime.fleet.download import Downloader, Progress, fetch_verified
from runtime.fleet.install import Installer
from runtime.fleet.lock import store_lock
from runtime.fleet.pack_sync import PackHost, PackSync
from runtime.fleet.releases import PACKS_PREFIX, Release, in_rollout
from runtime.fleet.state import FleetState, Listener, pause_point
from runtime.fleet.status import fleet_status
from runtime.fleet.trial import Loader, run_trial
from runtime.fleet.tufclient import FleetError, TrustedRepo

log = logging.getLogger(__name__)

# chooser(package meta, variant metas) -> (candidate variant ids to download, rule order;
# empty when none qualifies, reason). runtime.fleet.wiring.make_chooser asks the box.
Chooser = Callable[[PackageMeta, Sequence[VariantMeta]], tuple[list[str], str]]
# picker(staged package) -> (the variants to keep: the measured winner, then lighter
# rungs for the governor; empty when none qualifies, reason)
Picker = Callable[[ModelPackage], tuple[list[str], str]]
# on_activated(package, variant id or None, undo): the hot swap; ``undo`` puts the pointer
# back (the daemon's change path runs it when the swap fails); raising marks it bad
Activated = Callable[[ModelPackage, str | None, Callable[[], None] | None], None]


@dataclass
class SyncReport:
    """Per application: "current", "updated", "deferred" or "failed"; ``current`` is
    True when nothing failed and nothing waits (what ``fleet sync --once`` exits 0 on)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def current(self) -> bool:
        return not self.error and all(o in ("current", "updated") for o in self.outcomes.values())


def in_window(window: str | None, now: datetime | None = None) -> bool:
    """``HH:MM-HH:MM`` local time; a window may run past midnight (22:00-04:00)."""
    if not window:
        return True
    start_s, end_s = window.split("-")
    start, end = dtime.fromisoformat(start_s), dtime.fromisoformat(end_s)
    t = (now or datetime.now()).time()
    return start <= t < end if start <= end else (t >= start or t < end)


class FleetAgent:
    def __init__(
        self,
        settings: FleetSettings,
        store: Store,
        state_dir: Path,
        *,
        chooser: Chooser | None = None,
        loader: Loader | None = None,
        picker: Picker | None = None,
        floors: dict[str, int] | None = None,
        applications: Sequence[str] = (),
        on_activated: Activated | None = None,
        downloader: Downloader | None = None,
        progress: Progress | None = None,
        lock_wait_s: float = 0.0,
        on_lock_wait: Callable[[str], None] | None = None,
        pack_host: PackHost | None = None,
    ) -> None:
        """``lock_wait_s``: how long a sync or rollback waits for another holder of the
        store's lock (the daemon's cycle, a second CLI) before giving up; the daemon
        passes 0 (it tries again next cycle), the CLI a while, telling ``on_lock_wait``.
        ``pack_host``: the box's embedders for knowledge packs (runtime.fleet.pack_sync);
        without one a pack update fails with the reason."""
        if not settings.trusted_root:
            raise FleetError("[fleet] trusted_root is not set: the box has no root of trust")
        self.settings = settings
        self.store = store
        self.dir = Path(state_dir) / "fleet"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = FleetState(self.dir / "state.json")
        self.installer = Installer(store)
        self.chooser = chooser
        self.loader = loader
        self.picker = picker
        self.floors = floors or {}
        self.applications = list(applications)
        self.on_activated = on_activated
        self.downloader = downloader or Downloader(
            bandwidth_limit_bytes_s=settings.bandwidth_limit_bytes_s
        )
        self.progress = progress
        self.node_id = settings.node_id or socket.gethostname()
        self.lock_wait_s = lock_wait_s
        self.on_lock_wait = on_lock_wait
        self.packs = PackSync(settings, store.root, self.dir, self.installer, self.downloader,
                              pack_host, self.node_id, progress)  # fmt: skip
        self._wake = threading.Event()
        self._stop = threading.Event()

    # ---- locking: one agent per store, whether daemon or CLI -----------------------
    @property
    def lock_path(self) -> Path:
        """The store's lock (flock): held for a whole sync cycle or a rollback."""
        return self.dir / "lock"

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return store_lock(self.lock_path, self.lock_wait_s, self.on_lock_wait)

    # ---- one cycle -----------------------------------------------------------------
    def sync_once(
        self, repo_url: str | None = None, *, fetcher: FetcherInterface | None = None
    ) -> SyncReport:
        """One full cycle; ``repo_url`` overrides the settings, ``fetcher`` reads it
        (an offline bundle is both: ``sync_once(bundle.url, fetcher=bundle)``)."""
        with self._locked():
            removed = self.installer.cleanup()
            if removed:
                log.info("removed versions staged but never activated: %s", ", ".join(removed))
            report = SyncReport()
            url = repo_url or self.settings.url
            if not url:
                raise FleetError("[fleet] url is not set (and no bundle given)")
            if self.chooser is None or self.loader is None:
                raise FleetError("this agent was built without a chooser and a loader")
            for app in self._apps({}):
                if self.state.app(app).stage not in ("failed", "rolled_back"):
                    self.state.update(app, persist=False, stage="checking")
            repo: TrustedRepo | None = None
            try:
                repo = TrustedRepo(
                    url,
                    self.dir / "metadata",
                    Path(str(self.settings.trusted_root)),
                    fetcher=fetcher,
                )
                releases = repo.refresh()
                for app in self._apps(releases):
                    report.outcomes[app] = self._sync_app(repo, app, releases.get(app, []))
                # After the applications: an embedder the fleet updates comes first.
                window = in_window(self.settings.maintenance_window)
                for pack, outcome in self.packs.sync(repo, window_open=window).items():
                    report.outcomes[f"{PACKS_PREFIX}/{pack}"] = outcome
            except FleetError as e:
                # The metadata could not be trusted (or read): nothing changes on the box.
                # An app that serves is healthy: its update was refused, it did not fail.
                report.error = e.reason
                for app in self._apps({}):
                    active = self.installer.pointer(app)["version"]
                    if active is None:
                        self.state.update(app, stage="failed", reason=e.reason)
                    else:
                        reason = f"update refused, {active} keeps serving: {e.reason}"
                        self.state.update(app, stage="refused", reason=reason)
                self.packs.refused(e.reason)
                self.state.checked(e.reason)
                return report
            finally:
                if repo is not None:
                    repo.close()
            self.state.checked("")
            return report

    def _apps(self, releases: dict[str, list[Release]]) -> list[str]:
        if self.applications:
            return list(self.applications)
        return sorted(set(self.store.applications()) | set(releases))

    def _candidate(self, app: str, active: str | None, releases: list[Release]) -> Release | None:
        channel = self.settings.channel
        minimum = self.settings.min_versions.get(app)
        below_min = minimum is not None and (
            active is None or version_key(active) < version_key(minimum)
        )
        for r in reversed(releases):  # newest first
            if active is not None and version_key(r.version) <= version_key(active):
                return None
            if minimum is not None and version_key(r.version) < version_key(minimum):
                return None
            if self.state.is_bad(app, r.version):
                continue
            pct = r.rollout_for(channel)
            # Below the site's minimum the box takes the update whatever the rollout says.
            if pct > 0 and (below_min or in_rollout(self.node_id, app, pct)):
                return r
        return None

    def _sync_app(self, repo: TrustedRepo, app: str, releases: list[Release]) -> str:
        active = self.installer.pointer(app)["version"]
        release = self._candidate(app, active, releases)
        if release is None:
            reason = f"{active} is current" if active else "nothing published for this node"
            self.state.update(
                app,
                stage="active" if active else "idle",
                reason=reason,
                pending=None,
                variant=None,
                bytes_done=0,
                bytes_total=0,
            )
            return "current" if active else "failed" if self.applications else "current"
        version = release.version
        assert self.chooser is not None and self.loader is not None
        candidates, why = self.chooser(release.package, [v.meta for v in release.variants.values()])
        if not candidates:
            reason = f"no variant fits: {why}"
            self.state.update(app, stage="failed", pending=version, reason=reason)
            return "failed"
        variant = candidates[0]
        also = f"; measuring {', '.join(candidates)} here" if len(candidates) > 1 else ""
        self.state.update(
            app,
            stage="downloading",
            pending=version,
            variant=variant,
            reason=f"{version}: variant {variant} ({why}){also}",
        )
        try:
            self._download(repo, app, release, candidates)
        except FleetError as e:
            self.state.update(app, stage="failed", reason=e.reason)
            return "failed"
        minimum = self.settings.min_versions.get(app)
        urgent = active is None or (
            minimum is not None and version_key(active) < version_key(minimum)
        )
        if not urgent and not in_window(self.settings.maintenance_window):
            self.state.update(
                app,
                stage="idle",
                reason=(
                    f"{version} downloaded and verified; waiting for the maintenance window "
                    f"{self.settings.maintenance_window}"
                ),
            )
            return "deferred"
        return self._install(app, release, candidates)

    def _download(
        self, repo: TrustedRepo, app: str, release: Release, variants: Sequence[str]
    ) -> None:
        targets = {t.path: t for v in variants for t in release.targets_for(v)}
        todo = [t for t in targets.values() if not self.installer.has_blob(t)]
        total = sum(t.length for t in todo)
        self.state.update(app, bytes_done=0, bytes_total=total)
        paused = False

        def tick(now: int) -> None:
            nonlocal paused
            self.state.update(app, persist=False, bytes_done=now)
            if self.progress is not None:
                self.progress(app, now, total)
            if not paused and now * 2 >= total:
                paused = True
                pause_point("download")

        def verifying() -> None:
            self.state.update(app, stage="verifying", bytes_done=total)
            pause_point("verify")

        fetch_verified(self.downloader, self.installer, todo, repo.target_url, repo.opener(),
                       tick, verifying)  # fmt: skip

    def _install(self, app: str, release: Release, candidates: Sequence[str]) -> str:
        version = release.version
        assert self.loader is not None
        pdir = self.installer.stage(release, candidates)
        package = load_package(pdir)
        variant = candidates[0]
        if len(candidates) > 1 and self.picker is not None:
            # Measure the candidates here; keep the winner and the lighter rungs that
            # qualified (the governor's), drop the rest: nothing unmeasured serves.
            self.state.update(app, stage="trial", reason=f"{version}: measuring {candidates}")
            kept, why = self.picker(package)
            if not kept:
                reason = f"{version} rejected at trial: {why}"
                self.state.mark_bad(app, version, reason)
                self.installer.discard(app, version)
                self.state.update(app, stage="failed", reason=reason, pending=None)
                return "failed"
            variant = kept[0]
            log.info("%s %s: measured winner %s: %s; kept %s", app, version, variant, why, kept)
            self.installer.keep_only(pdir, set(kept), variant)
            package = load_package(pdir)
            self.state.update(app, variant=variant)
        self.state.update(app, stage="trial", reason=f"{version}: trial of {variant}")
        pause_point("trial")
        result = run_trial(package, variant, self.loader, floor_bp=self.floors.get(app))
        if not result.ok:
            reason = f"{version} rejected at trial: {result.reason}"
            self.state.mark_bad(app, version, reason)
            self.installer.discard(app, version)
            self.state.update(app, stage="failed", reason=reason, pending=None)
            return "failed"
        old = self.installer.activate(app, version)
        if self.on_activated is not None:
            try:
                self.on_activated(
                    package, variant, lambda: self.installer.restore_pointer(app, old)
                )
            except Exception as e:
                reason = f"{version} passed its trial but the hot swap failed: {e}"
                self.state.mark_bad(app, version, reason)
                self.installer.discard(app, version)
                self.state.update(app, stage="failed", reason=reason, pending=None)
                return "failed"
        reason = f"{version} ({variant}) active; trial: {result.reason}"
        self.state.update(
            app, stage="active", pending=None, bytes_done=0, bytes_total=0, reason=reason
        )
        return "updated"

    # ---- operator actions ----------------------------------------------------------
    def rollback(self, app: str) -> tuple[str, str]:
        """Serve the previous version; the one rolled back from is never retried."""
        with self._locked():
            frm, to = self.installer.rollback(app)
            self.state.mark_bad(app, frm, "rolled back by the operator")
            # Whatever the agent was fetching is moot now: no stale progress in the status.
            self.state.update(
                app,
                stage="rolled_back",
                pending=None,
                variant=None,
                bytes_done=0,
                bytes_total=0,
                reason=f"rolled back from {frm} to {to}",
            )
        if self.on_activated is not None:  # a failed swap leaves the rollback on disk
            self.on_activated(self.store.load(app, to), None, None)
        return frm, to

    def rollback_pack(self, pack: str) -> tuple[str, str]:
        """A knowledge pack's previous version again; the current one is never retried."""
        with self._locked():
            return self.packs.rollback(pack)

    def add_listener(self, fn: Listener) -> None:
        """``fn`` hears every change of the applications' or the packs' state."""
        self.state.add_listener(fn)
        self.packs.add_listener(fn)

    def status(self) -> dict[str, Any]:
        return {**fleet_status(self.store, self.state), "packs": self.packs.status()}

    # ---- the loop ------------------------------------------------------------------
    def update_now(self) -> None:
        """Wake the loop at once (the MQTT update-now command); thread-safe."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.downloader.stopping.set()

    def next_delay(self) -> float:
        # +-20% jitter so a fleet that booted together does not poll together.
        return self.settings.poll_interval_s * random.uniform(0.8, 1.2)

    def run_forever(self) -> None:
        """Blocking loop for ``headframe fleet sync`` in the foreground."""
        while not self._stop.is_set():
            self.cycle()
            self._wake.wait(self.next_delay())
            self._wake.clear()

    def cycle(self) -> None:
        """One sync that never raises (the loop's unit; runtime.fleet.runner uses it)."""
        try:
            report = self.sync_once()
            log.info("fleet sync: %s", report.outcomes or report.error)
        except FleetError as e:
            log.warning("fleet sync skipped: %s", e.reason)
        except Exception:
            log.exception("fleet sync crashed; the serving models are untouched")
