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
from runtime.errors import ModelNotFound
from runtime.service import InferenceService


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
    loader = VariantLoader(build_box(settings))
    service = InferenceService(loader)
    try:
        for app in apps:
            await service.add(store.load(app))
        yield service
    finally:
        await service.close()
