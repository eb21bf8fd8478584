"""The box's side of a knowledge pack's delivery (runtime.fleet.pack_sync ``PackHost``):
which embedders the box serves, the trial on the staged pack, and the switch.

- ``LoopPackHost(library, service, loop)``: the daemon's. The agent calls from its worker
  thread; the work runs on the daemon's loop with the service that answers queries (the
  same embedder, the same worker), and ``activated`` refreshes the library that serves
  them (it opens the new version, then switches in one assignment).
- ``LocalPackHost(settings, store)``: ``headframe fleet sync`` without a daemon. The box's
  embedding applications are loaded in this process (runtime.knowledge.local) for each
  question, and a daemon running on the same store opens the new version at its next look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from runtime.catalog import Store
from runtime.config import Settings
from runtime.errors import HeadframeError
from runtime.knowledge.identity import EmbedderIdentity
from runtime.knowledge.intake import Admission, BoxService, Plan, admit, served_embedders
from runtime.knowledge.library import KnowledgeLibrary
from runtime.knowledge.pack import Manifest

T = TypeVar("T")


class LoopPackHost:
    def __init__(
        self, library: KnowledgeLibrary, service: BoxService, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.library = library
        self.service = service
        self.loop = loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def served(self, dimensions: int) -> list[EmbedderIdentity]:
        async def read() -> list[EmbedderIdentity]:  # the slots, read on their own loop
            return served_embedders(self.service, dimensions)

        return self._run(read())

    def admit(self, name: str, vdir: Path, manifest: Manifest, decided: Plan) -> Admission:
        return self._run(admit(self.service, name, vdir, manifest, decided))

    def activated(self, name: str) -> None:
        self.library.refresh()


class LocalPackHost:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def _embedding_apps(self) -> list[str]:
        names = [a.name for a in self.settings.applications] or self.store.applications()
        out = []
        for app in names:
            try:
                if self.store.load(app).meta.task == "embedding":
                    out.append(app)
            except HeadframeError:
                continue  # an application the daemon could not serve either
        return out

    def _with(self, apps: list[str], work: Callable[[BoxService], Awaitable[T]]) -> T:
        from runtime.knowledge.local import local_service

        async def run() -> T:
            async with local_service(self.settings, self.store, apps) as service:
                return await work(service)

        return asyncio.run(run())

    def served(self, dimensions: int) -> list[EmbedderIdentity]:
        apps = self._embedding_apps()
        if not apps:
            return []

        async def read(service: BoxService) -> list[EmbedderIdentity]:
            return served_embedders(service, dimensions)

        return self._with(apps, read)

    def admit(self, name: str, vdir: Path, manifest: Manifest, decided: Plan) -> Admission:
        app = decided.app or manifest.embedder.app

        async def run(service: BoxService) -> Admission:
            return await admit(service, name, vdir, manifest, decided)

        try:
            return self._with([app], run)
        except HeadframeError as e:
            return Admission(False, f"refused: {e.message}", manifest)

    def activated(self, name: str) -> None:
        """Nothing here serves queries; a daemon on this store opens it itself."""
