"""The fleet agent inside the daemon: its loop, the hot swap, and what it reports.

``FleetRunner(agent, service)`` is what runtime/daemon/root.py creates when ``[fleet]`` is set:

- ``await runner.run()`` as a task: a sync cycle every poll interval (with jitter) on a
  worker thread, and between cycles a cheap reconcile every ``reconcile_s`` so a
  ``headframe rollback`` run from the shell is served within seconds;
- activation goes through ``service.swap`` (``service.add`` for a first install), called
  from the agent's thread onto the daemon's loop: zero failed requests;
- ``runner.update_now()`` (thread-safe) for the MQTT update-now command;
- ``runner.status()`` for /status and the status page, ``runner.metric_families()`` for
  /metrics (the daemon registers both with its ``ServerContext``),
  ``runner.add_listener(fn)`` for the retained MQTT ``{prefix}/fleet/state`` (fn gets the
  whole state on every change).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from runtime.catalog import ModelPackage
from runtime.fleet.agent import FleetAgent
from runtime.fleet.state import STAGES, Listener
from runtime.service import InferenceService
from runtime.service.swap_lock import SwapLock

log = logging.getLogger(__name__)


class FleetRunner:
    def __init__(
        self,
        agent: FleetAgent,
        service: InferenceService,
        *,
        reconcile_s: float = 2.0,
        swap_lock: SwapLock | None = None,
    ) -> None:
        self.agent = agent
        self.service = service
        # Shared with the governor: a fleet swap and a governor swap never overlap.
        self.swap_lock = swap_lock or SwapLock()
        self.reconcile_s = reconcile_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._wake: asyncio.Event | None = None
        agent.on_activated = self._activate

    # ---- hot swap (called on the agent's worker thread) -------------------------------
    def _activate(self, package: ModelPackage, variant: str | None) -> None:
        if self._loop is None:
            raise RuntimeError("the fleet runner is not running")
        fut = asyncio.run_coroutine_threadsafe(self._swap(package, variant), self._loop)
        fut.result()

    async def _swap(self, package: ModelPackage, variant: str | None) -> None:
        async with self.swap_lock.hold(package.application, "fleet"):
            if package.application in {s.app for s in self.service.slots()}:
                await self.service.swap(package.application, package, variant)
            else:
                await self.service.add(package, variant)

    async def reconcile(self) -> None:
        """Serve what the store's pointer says (after a CLI rollback, say)."""
        store = self.agent.store
        for slot in self.service.slots():
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
                    async with self.swap_lock.hold(slot.app, "fleet"):
                        await self.service.swap(slot.app, store.load(slot.app, want))
                except Exception as e:
                    log.error("%s: swap to %s failed, %s keeps serving: %s", slot.app, want,
                              slot.package.version, e)  # fmt: skip

    # ---- the loop -------------------------------------------------------------------
    def update_now(self) -> None:
        """Check the repository at once; safe from any thread (MQTT's, say)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def stop(self) -> None:
        self._stopping = True
        self.agent.stop()
        self.update_now()

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
        self.agent.state.add_listener(fn)

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
        return [
            stage, done, bad,
            GaugeMetricFamily(
                "headframe_fleet_last_check_timestamp_seconds", "Unix time of the last check.",
                value=st["last_check"] or 0,
            ),
            GaugeMetricFamily(
                "headframe_fleet_check_ok", "1 when the last metadata check succeeded.",
                value=0 if st["last_error"] else 1,
            ),
        ]  # fmt: skip
