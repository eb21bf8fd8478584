"""The embedding application in this process, for the command line (no daemon needed).

``local_service(settings, store, apps)`` is the composition the CLI's ``knowledge build``
and ``knowledge search`` use: the box's policy (probe, profile), the variant loader, an
``InferenceService`` holding the named applications, closed on exit. The daemon does not
use it: it hands the library its own service.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from runtime.catalog import Store
from runtime.config import Settings
from runtime.errors import ModelNotFound, NotReady
from runtime.service import InferenceService
from runtime.service.changes import ChangePath


@contextlib.asynccontextmanager
async def local_service(
    settings: Settings, store: Store, apps: Sequence[str]
) -> AsyncIterator[InferenceService]:
    from runtime.box import build_box
    from runtime.loading.loader import VariantLoader

    for app in apps:
        if app not in store.applications():
            raise ModelNotFound(
                f"embedder {app!r} is not in the store at {store.root} "
                "(headframe models add FILE --task embedding)"
            )
    box = build_box(settings)
    service = InferenceService(VariantLoader(box))
    try:
        # Loaded as the daemon loads at start: through the change path (the box decides).
        await ChangePath(service, lambda: box).start(store, apps, by="cli")
        failed = service.failures()
        for app in apps:
            if app in failed:
                raise NotReady(f"embedder {app!r} could not be loaded: {failed[app]}")
        yield service
    finally:
        await service.close()
