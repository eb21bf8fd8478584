"""The fleet agent inside the daemon: its loop, the hot swap, and what it reports.

``hot_swap(changes)`` is the agent's ``on_activated`` in the daemon: an activation or a
rollback, called on the agent's worker thread, goes through the change path
(runtime.service.changes) on the daemon's loop: one lock with the governor, the operator
and reloads, zero failed requests, and the pointer put back (the undo the agent hands in)
when the new version cannot load. ``FleetRunner(agent, changes)`` is what
runtime/daemon/ starts when ``[fleet]`` is set:

- ``await runner.run()`` as a task: a sync cycle every poll interval (with jitter) on a
  worker thread, and between cycles a cheap reconcile every ``reconcile_s`` so a
  ``headframe rollback`` run from the shell is served within seconds (the change path
  again);
- ``runner.update_now()`` (thread-safe) for the MQTT update-now command;
- ``runner.status()`` for /status and the status page, ``runner.metric_families()`` for
  /metrics, ``runner.add_listener(fn)`` for the retained MQTT ``{prefix}/fleet/state``
  (fn gets the whole state on every change); knowledge packs (``packs``) beside the
  applications in each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from runtime.catalog import ModelPackage
from runtime.fleet.agent import Activated, FleetAgent
from runtime.fleet.state import STAGES, Listener
from runtime.service import ModelSlot

log = logging.getLogger(__name__)


class FleetChanges(Protocol):
    """What the fleet needs of the change path (runtime.service.changes.ChangePath)."""

    def slots(self) -> list[ModelSlot]: ...

    async def activate(
        self,
        package: ModelPackage,
        variant: str | None,
        *,
        why: str,
        undo: Callable[[], None] | None = None,
        by: str = "fleet",
    ) -> ModelSlot: ...


def hot_swap(changes: FleetChanges) -> Activated:
    """The agent's ``on_activated``: called on its worker thread, it runs the activation on
    this (the daemon's, running) loop and waits for it; raising makes the agent mark the
    version bad."""
    loop = asyncio.get_running_loop()

    def activate(
        package: ModelPackage, variant: str | None, undo: Callable[[], None] | None
    ) -> None:
        why = f"activate {package.version}" + (f" ({variant})" if variant else "")
        fut = asyncio.run_coroutine_threadsafe(
            changes.activate(package, variant, why=why, undo=undo), loop
        )
        fut.result()

    return activate


class FleetRunner:
    def __init__(
        self, agent: FleetAgent, changes: FleetChanges, *, reconcile_s: float = 2.0
    ) -> None:
        self.agent = agent
        self.changes = changes
        self.reconcile_s = reconcile_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None

    async def reconcile(self) -> None:
        """Serve what the store's pointer says (after a CLI rollback, say)."""
        store = self.agent.store
        for slot in self.changes.slots():
            try:
                want = store.active_version(slot.app)
            except Exception as e:  # a bad pointer file: keep serving, say why
                log.warning("%s: cannot read the active pointer: %s", slot.app, e)
                continue
            if want is not None and want != slot.package.version:
                self.agent.state.reload()  # a shell rollback wrote its stage and bad mark
                log.info("%s: pointer says %s, serving %s; swapping", slot.app, want,
                         slot.package.version)  # fmt: skip
                try:
                    package = await asyncio.to_thread(store.load, slot.app, want)
                    await self.changes.activate(package, None, why=f"the pointer says {want}")
                except Exception as e:
                    log.error("%s: swap to %s failed, %s keeps serving: %s", slot.app, want,
                              slot.package.version, e)  # fmt: skip

    # ---- the loop -------------------------------------------------------------------
    def update_now(self) -> None:
        """Check the repository at once; safe from any thread (MQTT's, say)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    async def stop(self) -> None:
        """End the loop: a download in progress ends at its next chunk."""
        self._stopping = True
        self.agent.stop()
        self.update_now()

    def start(self) -> None:
        """Run on the running loop as a task (``stop`` ends it)."""
        self.task = asyncio.get_running_loop().create_task(self.run(), name="fleet")

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        next_sync = 0.0
        while not self._stopping:
            if time.monotonic() >= next_sync or self._wake.is_set():
                self._wake.clear()
                await asyncio.to_thread(self.agent.cycle)
                next_sync = time.monotonic() + self.agent.next_delay()
            await self.reconcile()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.reconcile_s)

    # ---- reporting ------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        self.agent.add_listener(fn)

    def status(self) -> dict[str, Any]:
        return {"node_id": self.agent.node_id, "channel": self.agent.settings.channel,
                **self.agent.status()}  # fmt: skip

    def metric_families(self) -> list[Metric]:
        """The fleet's Prometheus families: stage per app, bytes, last check, failures."""
        st = self.agent.status()
        stage = GaugeMetricFamily(
            "headframe_fleet_stage", "1 for the stage each application's update is in.",
            labels=["app", "stage"],
        )  # fmt: skip
        done = GaugeMetricFamily(
            "headframe_fleet_download_bytes", "Bytes of the pending update downloaded.",
            labels=["app"],
        )  # fmt: skip
        bad = GaugeMetricFamily(
            "headframe_fleet_bad_versions", "Versions marked bad (never retried).", labels=["app"]
        )
        for app, rec in st["apps"].items():
            for name in STAGES:
                stage.add_metric([app, name], 1 if rec["stage"] == name else 0)
            done.add_metric([app], rec["bytes_done"])
            bad.add_metric([app], len(rec["bad"]))
        pack_stage = GaugeMetricFamily(
            "headframe_fleet_pack_stage", "1 for the stage each knowledge pack's update is in.",
            labels=["pack", "stage"],
        )  # fmt: skip
        pack_bad = GaugeMetricFamily(
            "headframe_fleet_pack_bad_versions", "Knowledge pack versions marked bad.",
            labels=["pack"],
        )  # fmt: skip
        for pack, rec in st.get("packs", {}).items():
            for name in STAGES:
                pack_stage.add_metric([pack, name], 1 if rec["stage"] == name else 0)
            pack_bad.add_metric([pack], len(rec["bad"]))
        return [
            stage, done, bad, pack_stage, pack_bad,
            GaugeMetricFamily(
                "headframe_fleet_last_check_timestamp_seconds", "Unix time of the last check.",
                value=st["last_check"] or 0,
            ),
            GaugeMetricFamily(
                "headframe_fleet_check_ok", "1 when the last metadata check succeeded.",
                value=0 if st["last_error"] else 1,
            ),
        ]  # fmt: skip
