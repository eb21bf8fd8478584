"""The change path: the one way what an application runs changes.

Every caller goes through ``ChangePath``: an operator's pin or unpin (HTTP admin route,
MQTT ``select``, Sparkplug DCMD ``Variant``, ``headframe models use``), the governor's step
down and back up, the fleet's activation, rollback and reconcile with the pointer, a
reload (MQTT ``reload``, Sparkplug ``Node Control/Reload Models``), and the reselect after
SIGHUP or a store change (and the loads at start). The service's ``add``/``swap``/
``remove`` are this module's tools; nothing else calls them.

- One lock: one change at a time, held from the decision to the switch (load new, switch,
  drain old), so no two swaps overlap and no decision is made on a state that is gone.
- One history: the last ``keep`` changes, who asked, why, when, and how it ended
  (/status ``changes`` and the status page).
- One undo rule: a change that fails to load leaves the old variant serving and puts back
  what it set before loading (an operator's pin: the previous pin; the governor's
  override: the previous override; a fleet activation: the pointer, through the undo
  the fleet hands in), then raises.

Precedence is the box's (runtime.box): operator pin > the settings' variant > governor
override > automatic, resolved at every load. A governor step is refused while an operator
or the settings pin the application; a fleet activation drops the governor's override (the
new version starts from its own choice) and yields to an operator's or the settings' pin
when the new version has that variant. A reload means: load again as the box chooses now;
a variant forced for one load (the fleet's measured winner) is not kept.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from runtime.catalog import ModelPackage, Store
from runtime.errors import HeadframeError
from runtime.selection import Selection
from runtime.service.inference import InferenceService
from runtime.service.single_flight import SingleFlight
from runtime.service.slot import ModelSlot

log = logging.getLogger(__name__)

KEEP = 32  # changes in the history
# select(package) -> the loader's decision for it (BLOCKING: run in a thread)
Select = Callable[[ModelPackage], Selection]
Undo = Callable[[], None]


class PinInForce(Protocol):
    """Which pin is in force (runtime.box.PinState)."""

    @property
    def variant(self) -> str | None: ...

    @property
    def source(self) -> str:
        """ "operator", "settings", "governor" or "auto"."""
        ...


class Layers(Protocol):
    """The box's changeable layer (runtime.box.Box): operator pins and the governor's
    override. The box resolves their precedence at every load."""

    def pin_for(self, app: str) -> PinInForce: ...

    def operator_pin(self, app: str) -> Any:
        """The operator's pin as it is now (to put back on failure), or None."""
        ...

    def set_pin(self, app: str, variant: str | None, source: str) -> Any: ...

    def restore_pin(self, app: str, pin: Any) -> None: ...

    def override(self, app: str, variant: str | None, reason: str = "") -> None: ...


class Pinned(HeadframeError):
    """The governor asked to change an application an operator or the settings pin."""

    code = "pinned"


@dataclass
class Change:
    """One entry of the history: ``action`` on ``app`` asked by ``by`` because ``why``;
    ``outcome`` "running", then "ok", "unchanged" or "failed" (``detail`` says what serves
    now, or the error)."""

    app: str
    action: str
    by: str
    why: str
    started: float = field(default_factory=time.time)
    ended: float | None = None
    outcome: str = "running"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Listener = Callable[[Change], None]


def _served(slot: ModelSlot) -> str:
    return f"{slot.package.version} {slot.variant.id}"


class ChangePath:
    """The one component through which what an application runs changes. Create and use
    it on the service's event loop. ``layers()`` is the box in force (rebuilt on SIGHUP)."""

    def __init__(
        self, service: InferenceService, layers: Callable[[], Layers], *, keep: int = KEEP
    ) -> None:
        self._service = service
        self._layers = layers
        self._lock = asyncio.Lock()
        self._history: deque[Change] = deque(maxlen=keep)
        self._listeners: list[Listener] = []
        self._reloads: SingleFlight[str, ModelSlot] = SingleFlight()

    # ---- reading ---------------------------------------------------------------------
    def slots(self) -> list[ModelSlot]:
        """What serves now (read-only)."""
        return self._service.slots()

    def history(self) -> list[dict[str, Any]]:
        """The last changes, oldest first."""
        return [c.to_dict() for c in self._history]

    def status(self) -> dict[str, Any]:
        """The ``changes`` section of /status and the status page."""
        running = next((c for c in reversed(self._history) if c.ended is None), None)
        return {
            "running": running.to_dict() if running else None,
            "history": self.history(),
            "reloads_joined": self._reloads.joined,  # reloads that joined one under way
        }

    def add_listener(self, fn: Listener) -> None:
        """``fn(change)`` on the loop when a change starts (``ended`` None) and ends."""
        self._listeners.append(fn)

    # ---- the record ------------------------------------------------------------------
    def _tell(self, change: Change) -> None:
        for fn in list(self._listeners):
            try:
                fn(change)
            except Exception:
                log.exception("change listener %r failed", fn)

    @asynccontextmanager
    async def _entry(self, app: str, action: str, by: str, why: str) -> AsyncIterator[Change]:
        """One history entry around the work inside; the caller holds the lock."""
        change = Change(app, action, by, why)
        self._history.append(change)
        self._tell(change)
        try:
            yield change
        except BaseException as e:
            change.outcome = "failed"
            change.detail = getattr(e, "message", None) or str(e) or type(e).__name__
            raise
        else:
            if change.outcome == "running":
                change.outcome = "ok"
        finally:
            change.ended = time.time()
            log.info("change: %s %s by %s (%s): %s%s", action, app, by, why, change.outcome,
                     f": {change.detail}" if change.detail else "")  # fmt: skip
            self._tell(change)

    @asynccontextmanager
    async def _change(self, app: str, action: str, by: str, why: str) -> AsyncIterator[Change]:
        async with self._lock, self._entry(app, action, by, why) as change:
            yield change

    async def _swap(
        self,
        change: Change,
        app: str,
        package: ModelPackage | None = None,
        force: str | None = None,
        undo: Undo | None = None,
    ) -> ModelSlot:
        """Swap (or add, for an application not served yet); on failure ``undo``, then raise."""
        service = self._service
        try:
            if package is not None and app not in {s.app for s in service.slots()}:
                slot = await service.add(package, force)
            else:
                slot = await service.swap(app, package, force)
        except BaseException:
            if undo is not None:
                undo()
            raise
        change.detail = _served(slot)
        return slot

    # ---- the operator ----------------------------------------------------------------
    async def pin(self, app: str, variant: str | None, source: str) -> ModelSlot:
        """Pin ``variant`` (None or "auto": automatic), persisted by the box, and swap to
        what the box now chooses; a pin that cannot load puts the previous pin back.
        ``source``: "http" (the admin route, ``models use``), "mqtt", "sparkplug"."""
        self._service.slot(app)  # not_found or not_ready before any pin or loading
        auto = variant in (None, "auto")
        why = "automatic" if auto else f"pin {variant}"
        async with self._change(app, "unpin" if auto else "pin", source, why) as change:
            box = self._layers()
            before = box.operator_pin(app)
            box.set_pin(app, None if auto else variant, source)
            return await self._swap(change, app, undo=lambda: box.restore_pin(app, before))

    # ---- the governor ----------------------------------------------------------------
    async def govern(self, app: str, variant: str | None, reason: str) -> ModelSlot:
        """The governor's override of ``app`` (None: lifted, a step back to the box's own
        choice) and the swap; a failed one puts the previous override back. Refused
        (``Pinned``) while an operator or the settings pin ``app``."""
        action = "step" if variant is not None else "step back"
        async with self._change(app, action, "governor", reason) as change:
            box = self._layers()
            before = box.pin_for(app)
            if before.source in ("operator", "settings"):
                raise Pinned(f"{app} is pinned by the {before.source}; the governor does not act")
            previous = before.variant if before.source == "governor" else None
            box.override(app, variant, reason)
            return await self._swap(
                change, app, undo=lambda: box.override(app, previous, "restored: swap failed")
            )

    # ---- the fleet -------------------------------------------------------------------
    async def activate(
        self,
        package: ModelPackage,
        variant: str | None,
        *,
        why: str,
        undo: Undo | None = None,
        by: str = "fleet",
    ) -> ModelSlot:
        """Serve ``package`` (a fleet activation, rollback or reconcile), ``variant`` forced
        for this load (the fleet's measured winner; None: the box chooses). The governor's
        override is dropped first; an operator's or the settings' pin wins over ``variant``
        when the package has the pinned variant. On failure ``undo`` (the fleet's pointer)."""
        app = package.application
        try:
            async with self._change(app, "activate", by, why) as change:
                box = self._layers()
                box.override(app, None)  # the new version starts from its own choice
                pin = box.pin_for(app)
                pinned = pin.source in ("operator", "settings") and pin.variant is not None
                force = variant
                if pinned and variant not in (None, pin.variant):
                    if any(v.id == pin.variant for v in package.variants):
                        force = None  # the pin wins: the box loads it
                    else:
                        log.warning("%s: the pinned variant %s is not in %s; serving %s",
                                    app, pin.variant, package.version, variant)  # fmt: skip
                return await self._swap(change, app, package, force)
        except BaseException:
            if undo is not None:
                undo()
            raise

    # ---- reload and reselect ---------------------------------------------------------
    async def reload(self, apps: Sequence[str] | None, by: str) -> list[ModelSlot]:
        """Load ``apps`` (None: every served one) again as the box chooses now (its pins,
        the settings, the governor's override, else the automatic choice) and swap each;
        the first failure raises, with the old variant still serving.

        A reload of an application asked while one is queued for the lock or running
        joins it and gets its answer (a flood of reload commands makes a few swaps, not
        one each). Joining a running one loses nothing: what the box's choice depends on
        (pins, overrides) changes only under the same lock."""
        names = sorted(s.app for s in self._service.slots()) if apps is None else list(apps)
        done = []
        for app in names:
            done.append(await self._reloads.run(app, functools.partial(self._reload, app, by)))
        return done

    async def _reload(self, app: str, by: str) -> ModelSlot:
        async with self._change(app, "reload", by, "reload") as change:
            return await self._swap(change, app)

    async def start(self, store: Store, apps: Iterable[str], by: str = "daemon") -> None:
        """Start-up: load every application side by side (one that calibrates never delays
        another), as one change under the lock; one that cannot load is logged."""
        async with self._lock:
            await asyncio.gather(*(self._start_one(store, app, by) for app in apps))

    async def _start_one(self, store: Store, app: str, by: str) -> None:
        try:
            package = await asyncio.to_thread(store.load, app)
            async with self._entry(app, "add", by, "start") as change:
                change.detail = _served(await self._service.add(package))
        except HeadframeError as e:
            log.error("%s: not serving: %s", app, e.message)
        except Exception:
            log.exception("%s: not serving", app)

    async def reselect(
        self,
        by: str,
        store: Store,
        select: Select,
        wanted: Iterable[str],
        *,
        swap_served: bool = True,
    ) -> None:
        """Bring what serves in line with the store and the box's choice (SIGHUP, a store
        change): applications no longer wanted are dropped (failed ones forgotten), new ones
        added, a served one swapped only where its version or chosen variant changed,
        loading the decision made here (``select`` runs once per application). All under
        the lock; one application that cannot load is logged and the others go on.
        ``by``: "sighup" or "store watch"; ``swap_served=False`` only adds and drops."""
        service = self._service
        want = set(wanted)
        async with self._lock:
            # Gone from the settings or the store: a failed one left behind would keep its
            # error on /status forever.
            for app in sorted({s.app for s in service.slots()} | set(service.failures())):
                if app not in want:
                    async with self._entry(app, "remove", by, "no longer wanted"):
                        await service.remove(app)
            for app in sorted(want):
                current = next((s for s in service.slots() if s.app == app), None)
                if current is not None and not swap_served:
                    continue
                try:
                    await self._reselect_one(by, store, select, app, current)
                except HeadframeError as e:
                    outcome = "keeps its current variant" if current else "not serving"
                    log.error("%s: %s %s: %s", by, app, outcome, e.message)

    async def _reselect_one(
        self, by: str, store: Store, select: Select, app: str, current: ModelSlot | None
    ) -> None:
        package = await asyncio.to_thread(store.load, app)
        if current is None:
            async with self._entry(app, "add", by, "wanted, not served") as change:
                change.detail = _served(await self._service.add(package))
            return
        decided = await asyncio.to_thread(select, package)
        choice = decided.chosen
        same = choice is not None and choice.variant.variant == current.variant.id
        if same and package.version == current.package.version:
            return
        why = "new version" if package.version != current.package.version else "new choice"
        async with self._entry(app, "swap", by, why) as change:
            slot = await self._service.swap(app, package, decided=decided)
            change.detail = _served(slot)
