"""The table of live model slots: loading, hot swap, parking, readiness.

``SlotTable`` owns what the service serves: one ``ModelSlot`` per application, switched
by one assignment on the event loop (a request sees the old worker or the new one, never
a half-swapped state), the old worker drained before its backend is unloaded. Its
``add``, ``swap`` and ``remove`` change what an application runs: only the change path
(runtime.service.changes) calls them, so every change takes its lock and lands in its
history. ``InferenceService`` (runtime.service.inference) answers requests on top of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Literal

from runtime.catalog import ModelPackage
from runtime.config import ApplicationSettings
from runtime.errors import ModelNotFound, NotReady
from runtime.images.step import check_contracts
from runtime.selection import Selection
from runtime.service.slot import Loader, ModelSlot, batchable, schema_of
from runtime.service.worker import ModelWorker, WorkerConfig

log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]
# What "ready" means for the node (api.readiness): see SlotTable.is_ready.
Readiness = Literal["not_failed", "all", "any"]
# The one label that requests for applications this service never had are counted under,
# so a client sending made-up names cannot grow the statistics (and /metrics) without end.
UNKNOWN_APP = "_unknown"


class SlotTable:
    """The live slots of one service. Create and use it on one event loop."""

    def __init__(
        self,
        loader: Loader,
        *,
        queue_size: int = 64,
        workers: int = 1,
        app_settings: Mapping[str, ApplicationSettings] | None = None,
        readiness: Readiness = "all",
    ) -> None:
        self._loader = loader
        self.readiness: Readiness = readiness
        self._default = WorkerConfig(queue_size=queue_size, workers=workers)
        self._app_settings = dict(app_settings or {})
        self._slots: dict[str, ModelSlot] = {}
        self._pending: set[str] = set()
        self._failed: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[Listener] = []
        self._closing = False
        self._retiring: set[asyncio.Task[None]] = set()
        self._hold: str | None = None
        self._last_used: dict[str, float] = {}  # app -> monotonic time of the last request

    # ---- configuration ---------------------------------------------------------------
    def configure(self, settings: ApplicationSettings) -> None:
        """Per-application queue and batching; takes effect at the next add or swap."""
        self._app_settings[settings.name] = settings

    def set_workers(self, workers: int) -> None:
        """Threads per model (the profile's threads.workers); for models loaded from now on."""
        d = self._default
        self._default = WorkerConfig(d.queue_size, workers, d.max_batch, d.batch_wait_ms)

    def hold_readiness(self, reason: str | None) -> None:
        """While ``reason`` is set (start-up: probing, building the demo, loading), the
        service is not ready and unknown applications answer NotReady, not ModelNotFound."""
        self._hold = reason

    def add_listener(self, fn: Listener) -> None:
        """``fn(event, app)`` on the event loop after "loaded", "swapped", "removed",
        "parked" or "reloaded"."""
        self._listeners.append(fn)

    def _emit(self, event: str, app: str) -> None:
        for fn in list(self._listeners):
            try:
                fn(event, app)
            except Exception:
                log.exception("listener %r failed on %s %s", fn, event, app)

    def _worker_config(self, app: str) -> WorkerConfig:
        s = self._app_settings.get(app)
        if s is None:
            return self._default
        return WorkerConfig(s.queue_size, self._default.workers, s.max_batch, s.batch_wait_ms)

    # ---- lifecycle -------------------------------------------------------------------
    async def _load(
        self, package: ModelPackage, pin: str | None, decided: Selection | None = None
    ) -> ModelSlot:
        app = package.application
        if decided is None:
            loaded = await asyncio.to_thread(self._loader, package, pin)
        else:  # the change path decided already: load that decision, do not decide again
            loaded = await asyncio.to_thread(self._loader, package, pin, decided)
        try:
            schema = schema_of(loaded)
            check_contracts(package.meta.images, schema.inputs, package.path / "package.toml")
            info = loaded.backend.info()
            worker = ModelWorker(
                app, loaded.backend, self._worker_config(app), batchable=batchable(schema)
            )
        except Exception:
            await asyncio.to_thread(loaded.backend.unload)
            raise
        log.info(
            "%s %s: loaded variant %s on %s/%s",
            app, package.version, loaded.variant.id, info.backend, info.device,
        )  # fmt: skip
        self._last_used.setdefault(app, time.monotonic())
        return ModelSlot(app, loaded, schema, info, worker, pin)

    def _lock(self, app: str) -> asyncio.Lock:
        return self._locks.setdefault(app, asyncio.Lock())

    async def add(
        self, package: ModelPackage, pin: str | None = None, *, decided: Selection | None = None
    ) -> ModelSlot:
        """Load ``package`` (in a thread) and serve it. Raises what the loader raises; the
        app then stays not-ready with the error shown in ``failures()``. ``pin`` forces a
        variant for this load; ``decided``: the loader's decision, made already."""
        app = package.application
        async with self._lock(app):
            if app in self._slots:
                return await self._swap_locked(app, package, pin, decided)
            self._pending.add(app)
            try:
                slot = await self._load(package, pin, decided)
            except Exception as e:
                self._failed[app] = str(e)
                raise
            finally:
                self._pending.discard(app)
            self._failed.pop(app, None)
            self._slots[app] = slot
        self._emit("loaded", app)
        return slot

    async def swap(
        self,
        app: str,
        package: ModelPackage | None = None,
        pin: str | None = None,
        *,
        decided: Selection | None = None,
    ) -> ModelSlot:
        """Load the new variant (or version), switch, then drain and unload the old one.
        On a load failure the old one keeps serving and the error is raised."""
        async with self._lock(app):
            if app not in self._slots:
                raise ModelNotFound(f"no application {app!r} is served")
            return await self._swap_locked(app, package, pin, decided)

    async def _swap_locked(
        self, app: str, package: ModelPackage | None, pin: str | None, decided: Selection | None
    ) -> ModelSlot:
        old = self._slots[app]
        new = await self._load(package or old.package, pin, decided)
        self._slots[app] = new  # the switch: one assignment on the loop
        self._emit("swapped", app)
        self._start_retire(old)
        return new

    def _start_retire(self, old: ModelSlot) -> None:
        # Tracked, not fire-and-forget: a failed unload is logged, and close() waits for
        # the old variants to finish their requests and unload.
        task = asyncio.get_running_loop().create_task(
            self._retire(old), name=f"retire {old.app} {old.variant.id}"
        )
        self._retiring.add(task)
        task.add_done_callback(self._retired)

    def _retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def _retire(self, old: ModelSlot, timeout_s: float | None = None) -> None:
        try:
            drained = await old.worker.drain(timeout_s)
        except asyncio.CancelledError:
            drained = False  # close() stopped waiting for the old variant: unload it now
        if not drained:
            log.warning("%s: old variant %s still busy; unloading", old.app, old.variant.id)
        # Shielded: a cancellation must not leave the worker closed and the backend loaded.
        await asyncio.shield(self._unload(old))

    async def _unload(self, old: ModelSlot) -> None:
        if old.unloaded:  # parked earlier: nothing left to free
            return
        old.unloaded = True
        await asyncio.to_thread(old.worker.close)
        await asyncio.to_thread(old.loaded.backend.unload)
        log.info("%s: unloaded variant %s", old.app, old.variant.id)

    async def remove(self, app: str) -> None:
        """Stop serving ``app`` (drain, unload), or forget it if it had failed to load."""
        async with self._lock(app):
            slot = self._slots.pop(app, None)
            failed = self._failed.pop(app, None)
            if slot is None and failed is None:
                raise ModelNotFound(f"no application {app!r} is served")
            if slot is not None:
                await self._retire(slot)
        self._emit("removed", app)

    async def close(self, drain_timeout_s: float = 10.0) -> None:
        """Refuse new requests, wait up to ``drain_timeout_s`` for in-flight ones, unload."""
        self._closing = True
        slots = list(self._slots.values())
        self._slots.clear()
        retiring = list(self._retiring)  # old variants of swaps, still finishing requests
        await asyncio.gather(
            *(s.worker.drain(drain_timeout_s) for s in slots),
            asyncio.wait(retiring, timeout=drain_timeout_s) if retiring else asyncio.sleep(0),
        )
        for task in retiring:
            task.cancel()  # past the drain budget: stop waiting, unload
        await asyncio.gather(*retiring, return_exceptions=True)
        for s in slots:
            await self._retire(s, 0.0)

    # ---- idle unload ---------------------------------------------------------------------
    def last_used(self, app: str) -> float | None:
        """Monotonic time of ``app``'s last request (its first load if none came since);
        None for an application this service does not serve."""
        return self._last_used.get(app) if app in self._slots else None

    async def park(self, app: str) -> bool:
        """Unload ``app``'s model to free its memory; the application stays ready and
        listed, and its next request loads it again (its answer says how long it waited).
        Waits for the requests in flight (the swap's drain). False, and logged, when there
        is nothing to park (not served, already parked) or a swap, load or reload of
        ``app`` is in progress: the caller (the governor) tries again later."""
        lock = self._lock(app)
        slot = self._slots.get(app)
        if slot is None or slot.parked_since is not None:
            log.info("%s: not parked: %s", app, "not served" if slot is None else "already parked")
            return False
        if lock.locked():
            log.info("%s: not parked: a swap or load of it is in progress", app)
            return False
        async with lock:
            slot = self._slots.get(app)
            if slot is None or slot.parked_since is not None:
                return False
            idle_since = time.time() - (time.monotonic() - self._last_used.get(app, 0.0))
            slot.parked_since, slot.idle_since = time.time(), idle_since
            await self._retire(slot)  # new requests wait on the lock meanwhile, then reload
        log.info("%s: parked (variant %s unloaded, idle %.0f s); the next request reloads it",
                 app, slot.variant.id, time.time() - idle_since)  # fmt: skip
        self._emit("parked", app)
        return True

    async def _reload(self, app: str) -> ModelSlot:
        """Load a parked application again, under its lock: concurrent first requests
        load it once. A failure is kept on the slot (shown in /status) and raised as
        NotReady (503) naming the cause; the next request tries again."""
        async with self._lock(app):
            current = self._slots.get(app)
            if current is None:
                raise ModelNotFound(f"no application {app!r} is served")
            if current.parked_since is None:
                return current  # another request loaded it meanwhile
            try:
                new = await self._load(current.package, current.pin)
            except Exception as e:
                current.reload_error = str(e) or type(e).__name__
                log.warning("%s: reloading the parked model failed: %s", app, current.reload_error)
                raise NotReady(
                    f"{app}: loading the idle-unloaded model again failed: {current.reload_error}",
                    retry_after_s=2.0,
                ) from e
            self._slots[app] = new
        self._emit("reloaded", app)
        return new

    # ---- reading ---------------------------------------------------------------------
    def slot(self, app: str, version: str | None = None) -> ModelSlot:
        """The serving slot of ``app``: ModelNotFound for an application this service does
        not know, or when ``version`` is given and another one serves; NotReady while it
        loads (or the server starts)."""
        try:
            slot = self._slots[app]
        except KeyError:
            if app in self._pending or app in self._failed:
                raise NotReady(f"{app} has no loaded variant yet", retry_after_s=2.0) from None
            if self._hold is not None:
                raise NotReady(f"the server is starting: {self._hold}", retry_after_s=2.0) from None
            raise ModelNotFound(f"no application {app!r} is served") from None
        if version is not None and version != slot.package.version:
            raise ModelNotFound(f"{app} serves version {slot.package.version}, not {version!r}")
        return slot

    def slots(self) -> list[ModelSlot]:
        return list(self._slots.values())

    def known_apps(self) -> list[str]:
        """Every application added, loaded or not."""
        return sorted({*self._slots, *self._pending, *self._failed})

    def failures(self) -> dict[str, str]:
        return dict(self._failed)

    def is_ready(self) -> bool:
        """Whether the node is ready, by ``readiness``; never while starting or closing.

        ``all``: every added application has a loaded variant. ``any``: one has.
        ``not_failed``: every application that has not failed is loaded, so one broken
        application does not take the others out of a load balancer; but a node where
        applications failed and none serves is not ready. Each application's own
        readiness is /v2/models/{app}/ready (``slot``)."""
        if self._closing or self._hold is not None:
            return False
        if self.readiness == "any":
            return bool(self._slots)
        if self._pending:
            return False
        if self.readiness == "all":
            return not self._failed
        return bool(self._slots) or not self._failed

    def stats_label(self, app: str) -> str:
        """``app`` as the statistics name it: itself if this service knows it (serving,
        loading or failed), else UNKNOWN_APP."""
        known = app in self._slots or app in self._pending or app in self._failed
        return app if known else UNKNOWN_APP

    def queue_depths(self) -> dict[str, int]:
        return {app: 0 if s.unloaded else s.worker.depth for app, s in self._slots.items()}
