"""The daemon: the one composition root. Builds everything, owns signals and sd_notify.

Start-up order: check the bind rule (before anything slow) -> start the HTTP server
(liveness answers from here on) -> probe -> profile match -> store (the demo is built
into an empty one) -> VariantLoader -> load every configured application (or every
application in the store) -> READY=1. SIGTERM/SIGINT: STOPPING=1, stop accepting,
let in-flight requests finish (bounded), unload. SIGHUP: re-read the settings, the API
tokens (file included) and the readiness rule, drop applications that are gone (loaded
or failed), and reselect every other one, swapping only where the choice changed;
requests keep being served throughout. A change to the store alone (models add, remove) takes
the same path without SIGHUP (store_watch.py). Nothing else in the package imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn

from runtime.api.app import create_app
from runtime.api.auth import Tokens, check_bind, load_tokens
from runtime.api.context import ServerContext
from runtime.api.live_settings import apply_live_api
from runtime.api.server import start_http
from runtime.box.description import BoxDescription
from runtime.catalog import Store
from runtime.config import Settings, load_settings
from runtime.daemon.reselect import reselect
from runtime.daemon.sdnotify import Notifier
from runtime.errors import HeadframeError
from runtime.knowledge import KnowledgeLibrary
from runtime.service import InferenceService
from runtime.service.load_shed import LoadShed
from runtime.service.swap_lock import SwapLock

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
        self.settings = settings
        self.config_file = config_file
        self.overrides = dict(overrides or {})
        self.notifier = Notifier(env)
        self.phase = "starting"
        self.context = ServerContext(
            select=lambda app, variant: self.select_variant(app, variant, "http")
        )
        self.context.add_section("daemon", self._daemon_section)
        # The box policy in force and what calibration measured (read live: the box and
        # the loader are rebuilt on SIGHUP); the chosen variants' measured latency.
        self.context.add_section("box", self._box_section)
        self.context.add_section("calibration", self._calibration_section)
        self.context.add_metrics("calibration", self._measured_families)
        # The one LoadShed (runtime.service.load_shed): HTTP answers 429 and MQTT holds requests
        # while it blocks an application; the governor starts and stops it.
        self.shed = LoadShed()
        self.context.add_metrics("load_shed", self.shed.metric_families)
        self.service: InferenceService | None = None
        self.tokens = Tokens()  # the HTTP guard's live set, refreshed on SIGHUP
        self.loader: Any = None
        self.box: Any = None  # runtime.box.Box, built by _probe (again on SIGHUP)
        self._calibrator: Any = None  # runtime.loading.calibrator.Calibrator of the current loader
        self.store = Store(settings.paths.store)
        self.url: str | None = None
        # runtime.fleet.runner.FleetRunner when [fleet] is set; the MQTT bridge connects
        # to it with runtime.fleet.mqtt_hook.attach(daemon.fleet, bridge).
        self.fleet: Any = None
        self._stop = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.bridge: Any = None  # runtime.mqtt.bridge.MqttBridge when [mqtt] is configured
        self.sparkplug: Any = None  # runtime.sparkplug.node.EdgeNode when [sparkplug] enabled
        self.streams: Any = None  # runtime.streams.runner.StreamsRunner with [[streams]]
        self.knowledge: KnowledgeLibrary | None = None  # built with the HTTP app
        self._started = time.monotonic()
        # One reselect at a time: SIGHUP and the store watcher both run _reselect.
        self._reselecting = asyncio.Lock()
        self._watch_s = 0.0  # the store watcher's period in force (0: not watching)
        # One hot swap at a time between the fleet and the governor (runtime/governor/).
        self.swap_lock = SwapLock()
        self.governor: Any = None  # runtime.governor.controller.Governor unless disabled

    def _daemon_section(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "store": str(self.store.root),
            "store_watch_s": self._watch_s,
            # empty: every application in the store is served
            "configured_applications": [a.name for a in self.settings.applications],
            "url": self.url,
        }

    # ---- the parts ---------------------------------------------------------------------
    def _status(self, text: str) -> None:
        log.info("%s", text)
        self.notifier.send(STATUS=text)

    def _apps(self) -> list[str]:
        configured = [a.name for a in self.settings.applications]
        return configured or self.store.applications()

    async def _start_http(self) -> None:
        # Knowledge packs (runtime/knowledge/): opened once the models load, searched by
        # the HTTP and MQTT transports with the service's embedders.
        self.knowledge = KnowledgeLibrary(self.settings.paths.store, self._service())
        self.context.add_section("knowledge", self.knowledge.status)
        self.context.add_metrics("knowledge", self.knowledge.metric_families)
        app = create_app(
            self._service(),
            settings=self.settings,
            context=self.context,
            tokens=self.tokens,
            shed=self.shed,
            knowledge=self.knowledge,
        )
        http = await start_http(app, self.settings.api, DRAIN_TIMEOUT_S)
        self._server = http.server
        self._tasks.append(http.task)
        self.url = http.url
        self._status(f"headframe listening on {self.url}; loading models")

    def _box(self) -> Any:
        """The box policy (runtime.box.Box) built by ``_probe``."""
        assert self.box is not None, "called before the probe"
        return self.box

    def _box_section(self) -> dict[str, Any]:
        return self.box.describe() if self.box is not None else {}

    def _calibration_section(self) -> dict[str, Any]:
        return self._calibrator.last if self._calibrator is not None else {}

    def _measured_families(self) -> list[Any]:
        from runtime.loading.calibrator import measured_metric_families

        return measured_metric_families(self.service.slots()) if self.service else []

    def _service(self) -> InferenceService:
        assert self.service is not None
        return self.service

    def _build_loader(self) -> Any:
        """The loader measures before it chooses (runtime.loading.calibrator; cached in the state
        dir); what it measured shows on /status under "calibration"."""
        from runtime.loading.calibrator import measuring_loader

        loader, self._calibrator = measuring_loader(self._box())
        return loader

    async def _probe(self, settings: Settings) -> None:
        """Build the box policy (probe, profile, pins) off the loop; again on SIGHUP."""
        from runtime.box import build_box, pins_path

        pins = self.box.pins if self.box is not None else None
        if pins is not None and pins.path != pins_path(settings):
            pins = None  # the state directory moved: read the pins kept there
        if pins is not None:
            await asyncio.to_thread(pins.reload)
        box = await asyncio.to_thread(build_box, settings, pins=pins)
        description = BoxDescription(self.context.box.hostname, box.report, box.match)
        if self.box is None:
            self.context.describe(description)
        else:  # SIGHUP: the settings may force another profile
            self.context.redescribe(description)
            box.carry_overrides(self.box)  # the governor's steps outlive a reload
        self.box = box
        reasons = box.match.reasons if box.match else []
        log.info("device profile %s: %s", box.profile.name, "; ".join(reasons))

    async def select_variant(self, app: str, variant: str | None, source: str) -> Any:
        """An operator's select, the one path for every way it comes (HTTP admin route,
        MQTT ``select``, Sparkplug DCMD Variant; ``source`` names which): pin ``variant``
        (None: automatic), persisted by the box, then swap to what the box now chooses.
        A select that cannot load leaves the previous pin in force."""
        box = self.box
        assert box is not None
        service = self._service()
        service.slot(app)  # not_found or not_ready before any pin or loading, as over HTTP
        before = box.pins.get(app)
        box.set_pin(app, variant, source)
        try:
            return await service.swap(app)
        except Exception:
            box.pins.restore(app, before)
            raise

    async def _fill_store(self) -> None:
        if self.settings.demo and not self.store.applications():
            self.phase = "building the demo catalog"
            self._status(f"building the demo catalog into {self.store.root} (first start only)")
            from runtime.demo import build_demo_catalog

            await asyncio.to_thread(build_demo_catalog, self.store.root)

    async def _load_apps(self) -> None:
        # Side by side: an application that calibrates (bounded by its budget) never
        # delays one whose measurements are cached or that needs none.
        await asyncio.gather(*(self._load_app(app) for app in self._apps()))

    async def _load_app(self, app: str) -> None:
        try:
            package = await asyncio.to_thread(self.store.load, app)
            await self._service().add(package)
        except HeadframeError as e:
            log.error("%s: not serving: %s", app, e.message)
        except Exception:
            log.exception("%s: not serving", app)

    def _summary(self) -> str:
        service = self._service()
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

    async def _watchdog(self, interval: float) -> None:
        # Pinging from the event loop means a blocked loop stops the pings, as it should.
        while True:
            self.notifier.send(WATCHDOG=1)
            await asyncio.sleep(interval)

    # ---- signals -----------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    async def reload(self) -> None:
        """Re-read the settings and reselect every application; swaps keep serving."""
        service = self._service()
        try:
            settings = load_settings(self.config_file, overrides=self.overrides or None)
        except HeadframeError as e:
            log.error("reload refused, keeping the running settings: %s", e.message)
            return
        api = apply_live_api(settings.api, self.settings.api, self.tokens, service)
        settings = settings.model_copy(update={"api": api})
        self.notifier.send(
            RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )
        self.settings = settings
        self.store = Store(settings.paths.store)
        await self._probe(settings)  # the box policy again: settings, hardware, pins
        self.loader = self._build_loader()  # the service loads through self.loader
        for app_settings in settings.applications:
            service.configure(app_settings)
        await self._reselect("reload")
        self.notifier.send(READY=1, STATUS=self._summary())
        log.info("reloaded settings: %s", self._summary())

    async def store_changed(self) -> None:
        """The store watcher saw a change: SIGHUP's path, with the running settings. With
        [fleet] the runner moves served applications between versions (it reconciles with
        the pointer); swapping here too would load the same version twice."""
        await self._reselect("store change", swap_served=self.fleet is None)
        self.notifier.send(STATUS=self._summary())
        log.info("store changed: %s", self._summary())

    async def _reselect(self, why: str, swap_served: bool = True) -> None:
        """Drop applications gone from the settings or the store, add new ones, and swap
        those whose choice or version changed (runtime/daemon/reselect.py); one at a time."""
        async with self._reselecting:
            await reselect(
                why, self._service(), self.store, self.loader.select, self._apps(),
                swap_served=swap_served,
            )  # fmt: skip

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
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        self.service = InferenceService(
            self._load_via_current_loader,
            queue_size=64,
            workers=1,
            app_settings={a.name: a for a in self.settings.applications},
            readiness=self.settings.api.readiness,
        )
        self.service.hold_readiness("probing the hardware")
        try:
            await self._start_http()
            interval = self.notifier.watchdog_interval_s()
            if interval:
                self._tasks.append(asyncio.create_task(self._watchdog(interval), name="watchdog"))
            self.phase = "probing"
            await self._probe(self.settings)
            self.service.set_workers(self._box().profile.threads.workers)
            self._start_mqtt()
            self._start_sparkplug()
            self.service.hold_readiness("building the model store")
            await self._fill_store()
            self.loader = self._build_loader()
            self.phase = "loading"
            self.service.hold_readiness("loading models")
            async with self._reselecting:  # a store change seen meanwhile waits for this
                await self._start_store_watch()
                await self._load_apps()
            self._start_streams()
            await self._start_knowledge()
            self.service.hold_readiness(None)
            self.phase = "serving"
            self.notifier.send(READY=1, STATUS=self._summary())
            log.info("ready in %.2f s: %s", time.monotonic() - self._started, self._summary())
            from runtime.governor.wiring import start_governor

            self.governor = start_governor(
                self.settings.governor, self._service(), self, shed=self.shed
            )
            await self._start_fleet()
            if self.fleet is not None and self.bridge is not None:
                from runtime.fleet import mqtt_hook  # update-now and the retained fleet state

                mqtt_hook.attach(self.fleet, self.bridge)
            await self._stop.wait()
        finally:
            await self._shutdown()
        return 0

    async def _start_fleet(self) -> None:
        """The update agent runs in this process (no timer unit): its cycles on a worker
        thread, its hot swaps through the service. [fleet] changes need a restart."""
        if self.settings.fleet is None:
            return
        from runtime.fleet.runner import FleetRunner
        from runtime.fleet.wiring import build_agent, chooser_and_picker

        # The trial measures the downloaded candidates as the loader would (same cache).
        chooser, picker = chooser_and_picker(
            self.settings, lambda: self.box, lambda p: self.loader.select(p, governed=False)
        )
        try:
            agent = build_agent(
                self.settings,
                chooser=chooser,
                loader=self._load_via_current_loader,
                picker=picker,
            )
        except HeadframeError as e:
            log.error("model updates are off: %s", e.message)
            return
        self.fleet = FleetRunner(agent, self._service(), swap_lock=self.swap_lock)
        self.context.add_section("fleet", self.fleet.status)
        self.context.add_metrics("fleet", self.fleet.metric_families)
        self._tasks.append(asyncio.create_task(self.fleet.run(), name="fleet"))
        log.info("model updates from %s on channel %s as node %s", self.settings.fleet.url,
                 self.settings.fleet.channel, agent.node_id)  # fmt: skip

    async def _start_knowledge(self) -> None:
        """Open the packs' active versions now, and again every ``paths.store_watch_s``
        (a new version is opened beside the old, then switched to in one assignment)."""
        library = self.knowledge
        assert library is not None
        await asyncio.to_thread(library.refresh)
        every = self.settings.paths.store_watch_s
        if every > 0:

            async def watch() -> None:
                while True:
                    await asyncio.sleep(every)
                    await asyncio.to_thread(library.refresh)

            self._tasks.append(asyncio.create_task(watch(), name="knowledge-watch"))

    async def _start_store_watch(self) -> None:
        """Serve packages added to or removed from the store without SIGHUP
        (``paths.store_watch_s``; 0 turns it off; a change needs a restart)."""
        if self.settings.paths.store_watch_s <= 0:
            return
        from runtime.catalog.watch import StoreWatcher

        self._watch_s = self.settings.paths.store_watch_s
        watcher = StoreWatcher(lambda: self.store, self.store_changed, self._watch_s)
        await watcher.prime()
        self._tasks.append(asyncio.create_task(watcher.run(), name="store-watch"))

    def _start_mqtt(self) -> None:
        """The MQTT bridge when [mqtt] is configured: connects in the background (an absent
        broker is retried; HTTP serves meanwhile) and answers not_ready until models load."""
        if self.settings.mqtt is None:
            return
        from runtime.mqtt import paho_compat
        from runtime.mqtt.wiring import attach_bridge

        # Once per process: paho's version decides the fast path (and FastProperties).
        mode = paho_compat.start_up(self.settings.mqtt)
        self.bridge = attach_bridge(
            self.settings,
            self._service(),
            lambda: self.context.box,
            fast_path=mode.fast,
            info_sections={"box": self._box_section, "calibration": self._calibration_section},
            shed=self.shed,
            knowledge=self.knowledge,
        )
        if self.bridge is not None:
            # MQTT select pins through the box (persisted), as the HTTP admin route does.
            self.bridge.commands.selector = lambda app, v: self.select_variant(app, v, "mqtt")
            self.context.add_section("mqtt", self.bridge.stats)
            self.context.add_metrics("mqtt", self.bridge.metric_families)
            self.bridge.start()

    async def reload_models(self) -> None:
        """Load every served application again and swap (as the MQTT ``reload`` command)."""
        service = self._service()
        for slot in list(service.slots()):
            await service.swap(slot.app)  # the box's pins and choice, as at start

    async def _update_now(self) -> None:
        if self.fleet is None:
            raise HeadframeError("no fleet agent runs on this box")
        self.fleet.update_now()

    def _node_controls(self) -> dict[str, Any]:
        """The Sparkplug ``Node Control/...`` metrics this box supports beside Rebirth, each
        under the ``mqtt.commands`` switch of the MQTT command that does the same."""
        from runtime.sparkplug.commands import Control

        controls = {"Node Control/Reload Models": Control("reload", self.reload_models)}
        if self.settings.fleet is not None:
            controls["Node Control/Update Now"] = Control("update-now", self._update_now)
        return controls

    def _start_sparkplug(self) -> None:
        """The Sparkplug B edge node when [sparkplug] enabled: its own MQTT session, which
        connects in the background and births once a primary host (if named) is online."""
        if not self.settings.sparkplug.enabled:
            return
        from runtime.sparkplug.wiring import attach_sparkplug

        self.sparkplug = attach_sparkplug(
            self.settings,
            self._service(),
            lambda: self.context.box,
            # DCMD Variant pins through the box (persisted), as HTTP and MQTT select do.
            select=lambda app, v: self.select_variant(app, v, "sparkplug"),
            controls=self._node_controls(),
            last_result=lambda app: self.streams.last_result(app) if self.streams else None,
        )
        if self.sparkplug is not None:
            self.context.add_section("sparkplug", self.sparkplug.status)
            self.context.add_metrics("sparkplug", self.sparkplug.metric_families)
            self.sparkplug.start()

    def _start_streams(self) -> None:
        """The [[streams]] bindings, once the models are loaded (each binding checks its
        window against its model's input now); results and alert topics are refused as
        Response Topics by the bridge. [[streams]] changes need a restart."""
        if not self.settings.streams:
            return
        from runtime.streams.runner import attach_streams

        refuse = self.bridge.reply_topics.refuse if self.bridge is not None else None
        self.streams = attach_streams(self.settings, self._service(), refuse=refuse)
        if self.streams is not None:
            self.context.add_section("streams", self.streams.status)
            self.context.add_metrics("streams", self.streams.metric_families)
            self.streams.start()

    def _load_via_current_loader(self, package: Any, pin: str | None) -> Any:
        return self.loader(package, pin)

    async def _shutdown(self) -> None:
        self.phase = "stopping"
        self.notifier.send(STOPPING=1, STATUS="stopping: draining requests")
        if self.governor is not None:
            await self.governor.close()  # no swap starts while the service drains
        if self.fleet is not None:
            self.fleet.stop()  # a download in progress ends at its next chunk
        log.info("stopping: draining in-flight requests (up to %.0f s)", DRAIN_TIMEOUT_S)
        if self._server is not None:
            self._server.should_exit = True  # stop accepting; uvicorn lets requests finish
        http = [t for t in self._tasks if t.get_name() == "http"]
        if http:
            await asyncio.wait(http, timeout=DRAIN_TIMEOUT_S + 1)
        if self.bridge is not None:
            try:  # "offline" on the status topic; unsent replies stay in the buffer
                await self.bridge.stop()
            except Exception:
                log.exception("stopping the MQTT bridge failed")
        if self.streams is not None:
            try:
                await self.streams.stop()
            except Exception:
                log.exception("stopping the stream bindings failed")
        if self.sparkplug is not None:
            try:  # NDEATH: the host marks every device stale at once
                await self.sparkplug.stop()
            except Exception:
                log.exception("stopping the Sparkplug edge node failed")
        if self.service is not None:
            await self.service.close(drain_timeout_s=DRAIN_TIMEOUT_S)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.notifier.close()
        log.info("stopped")
