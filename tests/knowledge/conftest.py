"""Fixtures for the knowledge tests: one store with the real MiniLM encoder and two packs
built from documents the tests make (a manual PDF and its Markdown twin, the standard
library's docstrings), and a live service + library on a loop thread to search them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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
from tests.support.knowledge import build, write_manual_pdf, write_stdlib_corpus  # noqa: E402
from tests.support.loaders import ort_loader  # noqa: E402
from tests.support.loop_thread import LoopThread  # noqa: E402
from tests.support.minilm import APP, minilm_store  # noqa: E402


@dataclass
class Packs:
    store: Path
    docs: Path
    reports: dict[str, Any]


@pytest.fixture(scope="session")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Packs:
    """``manuals`` 1.0.0 (manual.pdf) and ``stdlib`` 1.0.0 (docstrings), built once."""
    root = tmp_path_factory.mktemp("knowledge")
    store = minilm_store(root / "store")
    docs = root / "docs"
    docs.mkdir()
    manual = write_manual_pdf(docs / "manual.pdf")
    corpus = write_stdlib_corpus(docs / "stdlib")
    reports = {
        "manuals": build(store, [manual], "manuals", "1.0.0"),
        "stdlib": build(store, [corpus], "stdlib", "1.0.0"),
    }
    return Packs(store, docs, reports)


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
