"""Fixtures for the knowledge tests: one store with the real MiniLM encoder and two packs
built from documents the tests make (a manual PDF and its Markdown twin, the standard
library's docstrings), and a live service + library on a loop thread to search them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.prereq import need_module

need_module("torch")
need_module("transformers")
need_module("fpdf")
need_module("pypdf")

from runtime.catalog import Store  # noqa: E402
from runtime.knowledge.library import KnowledgeLibrary  # noqa: E402
from runtime.service import InferenceService  # noqa: E402
from tests.support.knowledge import Packs, make_packs  # noqa: E402
from tests.support.loaders import ort_loader  # noqa: E402
from tests.support.loop_thread import LoopThread  # noqa: E402
from tests.support.minilm import APP  # noqa: E402


@pytest.fixture(scope="session")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Packs:
    """``manuals`` 1.0.0 (manual.pdf) and ``stdlib`` 1.0.0 (docstrings), built once."""
    return make_packs(tmp_path_factory.mktemp("knowledge"))


@dataclass
class Live:
    loop: LoopThread
    service: InferenceService
    library: KnowledgeLibrary

    def search(self, pack: str, body: dict[str, Any]) -> Any:
        from runtime.knowledge.search import parse_search

        return self.loop.call(self.library.search(pack, parse_search(body)))


@pytest.fixture(scope="module")
def live(packs: Packs) -> Iterator[Live]:
    """The store's packs open in a library over a service serving MiniLM."""
    with LoopThread() as loop:

        async def start() -> InferenceService:
            service = InferenceService(ort_loader)
            await service.add(Store(packs.store).load(APP))
            return service

        service = loop.call(start(), 120)
        library = KnowledgeLibrary(packs.store, service)
        library.refresh()
        try:
            yield Live(loop, service, library)
        finally:
            loop.call(service.close(), 30)
