"""Bring what the service serves in line with the store and the box's choice, keeping
requests served throughout: the one path SIGHUP and a store change (store_watch.py) take.

Applications no longer wanted are dropped (loaded ones unloaded, failed ones forgotten);
new ones are added; a served one is swapped (load new, switch, drain old) only where its
version or its chosen variant changed. One application that cannot load is logged and
the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from runtime.catalog import ModelPackage, Store
from runtime.errors import HeadframeError
from runtime.selection import Selection
from runtime.service import InferenceService

log = logging.getLogger(__name__)

Select = Callable[[ModelPackage], Selection]


async def reselect(
    why: str,
    service: InferenceService,
    store: Store,
    select: Select,
    wanted: Iterable[str],
    *,
    swap_served: bool = True,
) -> None:
    """``select(package)`` is the loader's choice (blocking: run in a thread);
    ``swap_served=False`` only adds and drops, leaving served applications as they are."""
    wanted = set(wanted)
    # Gone from the settings or the store: loaded ones are unloaded, failed ones
    # forgotten (a failed one left behind would keep its error on /status forever).
    for app in sorted({s.app for s in service.slots()} | set(service.failures())):
        if app not in wanted:
            await service.remove(app)
            log.info("%s: %s is gone; no longer served", why, app)
    for app in sorted(wanted):
        current = {s.app: s for s in service.slots()}.get(app)
        if current is not None and not swap_served:
            continue
        try:
            package = await asyncio.to_thread(store.load, app)
            if current is None:
                await service.add(package)
                continue
            choice = (await asyncio.to_thread(select, package)).chosen
            same = choice is not None and choice.variant.variant == current.variant.id
            if same and package.version == current.package.version:
                continue
            await service.swap(app, package)
        except HeadframeError as e:
            outcome = "keeps its current variant" if current else "not serving"
            log.error("%s: %s %s: %s", why, app, outcome, e.message)
