"""The daemon: the one composition root. Builds everything, owns signals and sd_notify.

Start-up order: check the bind rule (before anything slow) -> start the HTTP server
(liveness answers from here on) -> probe, profile match, loader (``reload.assemble``) ->
the optional rooms (``rooms.build_rooms``; the MQTT bridge and the Sparkplug node start
now) -> store (the demo is built into an empty one) -> load every configured application
(or every application in the store) through the change path -> the stream bindings ->
READY=1 -> the governor and the fleet. SIGTERM/SIGINT: STOPPING=1, stop accepting, let
in-flight requests finish (bounded), unload. SIGHUP: re-read the settings, the API tokens
(file included) and the readiness rule, rebuild the box and the loader, drop applications
that are gone (loaded or failed), and reselect every other one, swapping only where the
choice changed; requests keep being served throughout. A change to the store alone
(models add, remove) takes the same path without SIGHUP (catalog/watch.py). Whatever
changes what an application runs goes through the one change path
(runtime.service.changes). Nothing else in the package imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn

from runtime.api.app import create_app
from runtime.api.auth import Tokens, check_bind, load_tokens
from runtime.api.context import ServerContext
from runtime.api.server import start_http
from runtime.box.description import BoxDescription
from runtime.catalog import ModelPackage
from runtime.catalog.staging import sweep_staging
from runtime.config import Settings
from runtime.daemon.reload import Assembly, assemble, reread
from runtime.daemon.rooms import RoomParts, Rooms, build_rooms
from runtime.daemon.sdnotify import Notifier
from runtime.knowledge import KnowledgeLibrary
from runtime.loading.loader import LoadedModel
from runtime.selection import Selection
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from runtime.service.load_shed import LoadShed

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 10.0


class Daemon:
    """``await Daemon(settings).run()`` serves until SIGTERM; returns the exit status.

    ``config_file`` and ``overrides`` are what SIGHUP re-reads (the command line's
    ``--config``, ``--host``, ``--port``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_file: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config_file = config_file
        self.overrides = dict(overrides or {})
        self.notifier = Notifier(env)
        self.phase = "starting"
        self.hostname = socket.gethostname()
        self._settings = settings  # until the probe; then the assembly's (SIGHUP's) settings
        self.parts: Assembly | None = None  # the probe's parts; replaced as one on SIGHUP
        self.tokens = Tokens()  # the HTTP guard's live set, refreshed on SIGHUP
        # The one LoadShed (runtime.service.load_shed): HTTP answers 429 and MQTT holds
        # requests while it blocks an application; the governor starts and stops it.
        self.shed = LoadShed()
        self.service = InferenceService(
            self._load,
            queue_size=64,
            workers=1,
            app_settings={a.name: a for a in settings.applications},
            readiness=settings.api.readiness,
        )
        self.service.hold_readiness("starting")
        # Every change of what an application runs, one at a time, with its history.
        self.changes = ChangePath(self.service, lambda: self._parts().box)
        self.context = ServerContext(self._description)
        self.context.add_section("daemon", self._daemon_section)
        # The box policy in force, what calibration measured, the changes made; the chosen
        # variants' measured latency.
        self.context.add_section("box", lambda: self.parts.box.describe() if self.parts else {})
        self.context.add_section("calibration", self._calibration_section)
        self.context.add_section("changes", self.changes.status)
        self.context.add_metrics("calibration", self._measured_families)
        self.context.add_metrics("load_shed", self.shed.metric_families)
        # Knowledge packs (runtime/knowledge/): opened once the models load, searched by
        # the HTTP and MQTT transports with the service's embedders.
        self.knowledge = KnowledgeLibrary(settings.paths.store, self.service)
        self.context.add_section("knowledge", self.knowledge.status)
        self.context.add_metrics("knowledge", self.knowledge.metric_families)
        self.rooms = Rooms()  # the optional rooms, built after the probe
        self.url: str | None = None
        self._stop = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._started = time.monotonic()
        self._watch_s = 0.0  # the store watcher's period in force (0: not watching)

    @property
    def settings(self) -> Settings:
        return self.parts.settings if self.parts is not None else self._settings

    # ---- what the parts read -----------------------------------------------------------
    def _parts(self) -> Assembly:
        assert self.parts is not None, "called before the probe"
        return self.parts

    def _description(self) -> BoxDescription:
        return self.parts.description if self.parts else BoxDescription(self.hostname)

    def _load(
        self, package: ModelPackage, pin: str | None, decided: Selection | None = None
    ) -> LoadedModel:
        """The service's loader: the one in force (SIGHUP rebuilds it)."""
        return self._parts().loader(package, pin, decided)

    def _daemon_section(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "store": str(self.parts.store.root if self.parts else self.settings.paths.store),
            "store_watch_s": self._watch_s,
            # empty: every application in the store is served
            "configured_applications": [a.name for a in self.settings.applications],
            "url": self.url,
        }

    def _calibration_section(self) -> dict[str, Any]:
        return self.parts.calibrator.last if self.parts else {}

    def _measured_families(self) -> list[Any]:
        from runtime.loading.calibrator import measured_metric_families

        return measured_metric_families(self.service.slots())

    def _status(self, text: str) -> None:
        log.info("%s", text)
        self.notifier.send(STATUS=text)

    def _summary(self) -> str:
        service = self.service
        parts = [
            f"{s.app} {s.package.version}: {s.variant.id} on {s.backend_info.backend}/"
            f"{s.backend_info.device}"
            for s in service.slots()
        ]
        failed = sorted(service.failures())
        text = "serving " + ("; ".join(parts) if parts else "no applications")
        if failed:
            text += f"; NOT serving {', '.join(failed)} (see the log or /status)"
        return f"{text} on {self.url}"

    # ---- the steps of start-up -------------------------------------------------------
    async def _start_http(self) -> None:
        app = create_app(
            self.service,
            settings=self.settings,
            context=self.context,
            changes=self.changes,
            tokens=self.tokens,
            shed=self.shed,
            knowledge=self.knowledge,
        )
        http = await start_http(app, self.settings.api, DRAIN_TIMEOUT_S)
        self._server = http.server
        self._tasks.append(http.task)
        self.url = http.url
        self._status(f"headframe listening on {self.url}; loading models")

    def _build_rooms(self) -> None:
        """Every optional room the settings ask for, registered with the HTTP side."""
        self.rooms = build_rooms(
            RoomParts(
                settings=self.settings,
                service=self.service,
                changes=self.changes,
                shed=self.shed,
                knowledge=self.knowledge,
                box=lambda: self._parts().box,
                loader=lambda: self._parts().loader,
                description=self._description,
                info_sections={
                    "box": lambda: self.parts.box.describe() if self.parts else {},
                    "calibration": self._calibration_section,
                },
            )
        )
        self.rooms.register(self.context)

    async def _fill_store(self) -> None:
        parts = self._parts()
        # What a killed `models build`/`add` left there (never a running one's: staging.py).
        await asyncio.to_thread(sweep_staging, parts.store.root)
        if self.settings.demo and not parts.store.applications():
            self.phase = "building the demo catalog"
            self._status(f"building the demo catalog into {parts.store.root} (first start only)")
            from runtime.demo import build_demo_catalog

            await asyncio.to_thread(build_demo_catalog, parts.store.root)

    async def _start_store_watch(self) -> None:
        """Serve packages added to or removed from the store without SIGHUP
        (``paths.store_watch_s``; 0 turns it off; a change needs a restart)."""
        if self.settings.paths.store_watch_s <= 0:
            return
        from runtime.catalog.watch import StoreWatcher

        self._watch_s = self.settings.paths.store_watch_s
        watcher = StoreWatcher(lambda: self._parts().store, self.store_changed, self._watch_s)
        await watcher.prime()
        self._tasks.append(asyncio.create_task(watcher.run(), name="store-watch"))

    async def _start_knowledge(self) -> None:
        """Open the packs' active versions now, and again every ``paths.store_watch_s``
        (a new version is opened beside the old, then switched to in one assignment)."""
        library = self.knowledge
        await asyncio.to_thread(library.refresh)
        every = self.settings.paths.store_watch_s
        if every > 0:

            async def watch() -> None:
                while True:
                    await asyncio.sleep(every)
                    await asyncio.to_thread(library.refresh)

            self._tasks.append(asyncio.create_task(watch(), name="knowledge-watch"))

    async def _watchdog(self, interval: float) -> None:
        # Pinging from the event loop means a blocked loop stops the pings, as it should.
        while True:
            self.notifier.send(WATCHDOG=1)
            await asyncio.sleep(interval)

    # ---- signals -----------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    async def reload(self) -> None:
        """Re-read the settings, rebuild the box and the loader, and reselect every
        application through the change path; swaps keep serving."""
        parts = self._parts()
        settings = reread(self.config_file, self.overrides, parts.settings, self.tokens,
                          self.service)  # fmt: skip
        if settings is None:
            return
        self.notifier.send(
            RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )
        # The box policy again (settings, hardware, pins); the service loads through it.
        self.parts = parts = await assemble(settings, self.hostname, parts)
        await self.changes.reselect(
            "sighup", parts.store, parts.loader.select, parts.applications()
        )
        self.notifier.send(READY=1, STATUS=self._summary())
        log.info("reloaded settings: %s", self._summary())

    async def store_changed(self) -> None:
        """The store watcher saw a change: SIGHUP's path, with the running settings. With
        a fleet runner it moves served applications between versions (it reconciles with
        the pointer); swapping here too would load the same version twice."""
        parts = self._parts()
        await self.changes.reselect(
            "store watch", parts.store, parts.loader.select, parts.applications(),
            swap_served=self.rooms.fleet is None,
        )  # fmt: skip
        self.notifier.send(STATUS=self._summary())
        log.info("store changed: %s", self._summary())

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: self._tasks.append(loop.create_task(self.reload()))
        )

    # ---- the whole life ----------------------------------------------------------------
    async def run(self) -> int:
        """Serve until a stop signal; 0 on an orderly stop. Raises ConfigError on bad
        settings before opening any socket."""
        tokens = load_tokens(self.settings.api)
        check_bind(self.settings.api.host, tokens)
        self.tokens.replace(tokens)
        self._install_signals(asyncio.get_running_loop())
        service = self.service
        service.hold_readiness("probing the hardware")
        try:
            await self._start_http()
            interval = self.notifier.watchdog_interval_s()
            if interval:
                self._tasks.append(asyncio.create_task(self._watchdog(interval), name="watchdog"))
            self.phase = "probing"
            self.parts = parts = await assemble(self.settings, self.hostname, None)
            service.set_workers(parts.box.profile.threads.workers)
            self._build_rooms()
            self.rooms.start("mqtt", "sparkplug")  # not_ready until the models load
            service.hold_readiness("building the model store")
            await self._fill_store()
            self.phase = "loading"
            service.hold_readiness("loading models")
            await self._start_store_watch()  # a change seen meanwhile waits for the loads
            await self.changes.start(parts.store, parts.applications())
            await self._start_knowledge()
            self.rooms.start("streams")
            service.hold_readiness(None)
            self.phase = "serving"
            self.notifier.send(READY=1, STATUS=self._summary())
            log.info("ready in %.2f s: %s", time.monotonic() - self._started, self._summary())
            self.rooms.start("governor", "fleet")
            await self._stop.wait()
        finally:
            await self._shutdown()
        return 0

    async def _shutdown(self) -> None:
        self.phase = "stopping"
        self.notifier.send(STOPPING=1, STATUS="stopping: draining requests")
        # No swap starts while the service drains; a download ends at its next chunk.
        await self.rooms.stop("governor", "fleet")
        log.info("stopping: draining in-flight requests (up to %.0f s)", DRAIN_TIMEOUT_S)
        if self._server is not None:
            self._server.should_exit = True  # stop accepting; uvicorn lets requests finish
        http = [t for t in self._tasks if t.get_name() == "http"]
        if http:
            await asyncio.wait(http, timeout=DRAIN_TIMEOUT_S + 1)
        # MQTT: "offline" on the status topic, unsent replies stay in the buffer;
        # Sparkplug: NDEATH, the host marks every device stale at once.
        await self.rooms.stop("mqtt", "streams", "sparkplug")
        await self.service.close(drain_timeout_s=DRAIN_TIMEOUT_S)
        rooms = (self.rooms.fleet, self.rooms.governor)
        tasks = [*self._tasks, *(r.task for r in rooms if r is not None and r.task is not None)]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.notifier.close()
        log.info("stopped")
