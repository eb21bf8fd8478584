"""The pack on disk and the library that serves it: manifest and digests, the atomic switch
under query load, the embedder rule, bad queries."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path

import pytest

from runtime.catalog import Store
from runtime.catalog.add import import_path
from runtime.errors import InvalidInput, MetadataError, ModelNotFound
from runtime.knowledge.library import KnowledgeLibrary, PackRefused
from runtime.knowledge.pack import PackStore, read_manifest, verify
from runtime.knowledge.search import parse_search
from runtime.service import InferenceService
from tests.support.loaders import ort_loader
from tests.support.minilm import APP, minilm_package_dir

pytestmark = pytest.mark.slow


def _copy_packs(src: Path, dest: Path) -> Path:
    shutil.copytree(src / "_knowledge", dest / "_knowledge")
    return dest


def _new_version(store: Path, pack: str, old: str, new: str) -> None:
    """Another version with the same files (a rebuild's stand-in): manifest renamed."""
    src, dst = store / "_knowledge" / pack / old, store / "_knowledge" / pack / new
    shutil.copytree(src, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    doc["version"] = new
    (dst / "manifest.json").write_text(json.dumps(doc))


def test_the_manifest_names_the_embedder_and_every_file_digest(packs) -> None:  # type: ignore[no-untyped-def]
    vdir, manifest = PackStore(packs.store).manifest("manuals")
    assert manifest.embedder.app == APP and manifest.embedder.dimensions == 384
    assert len(manifest.embedder.variant_digest) == 64 and manifest.embedder.variant == "onnx-fp32"
    assert set(manifest.files) == {"chunks.sqlite", "vectors.npy"}
    assert manifest.sources[0].file == "manual.pdf" and manifest.chunks > 5
    verify(vdir, manifest)


def test_a_changed_file_fails_verification(packs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = _copy_packs(packs.store, tmp_path)
    vdir = store / "_knowledge" / "manuals" / "1.0.0"
    with (vdir / "vectors.npy").open("r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x00\x80\x7f")
    with pytest.raises(MetadataError, match=r"vectors\.npy: does not match the manifest"):
        verify(vdir, read_manifest(vdir))


def test_a_switch_under_query_load_fails_no_query(live, packs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = _copy_packs(packs.store, tmp_path)
    _new_version(store, "manuals", "1.0.0", "2.0.0")
    library = KnowledgeLibrary(store, live.service)
    library.refresh()
    assert library.get("manuals").version == "1.0.0"  # the pointer names it
    packs_store = PackStore(store)
    request = parse_search({"query": "main bearing torque", "max_num_results": 3})
    stop = threading.Event()

    def flip() -> None:
        versions = ["1.0.0", "2.0.0"]
        i = 0
        while not stop.is_set():
            packs_store.set_active("manuals", versions[i % 2])
            library.refresh()
            i += 1

    async def load() -> tuple[int, set[str]]:
        ok, seen = 0, set()
        for _ in range(40):
            results = await asyncio.gather(*(library.search("manuals", request) for _ in range(5)))
            for pack, hits in results:
                assert hits and "450 Nm" in hits[0].row.text
                ok += 1
                seen.add(pack.version)
        return ok, seen

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        ok, seen = live.loop.call(load(), 300)
    finally:
        stop.set()
        flipper.join()
    assert ok == 200 and seen == {"1.0.0", "2.0.0"}
    assert library.status()["packs"]["manuals"]["queries"] == 200


def test_a_pack_whose_embedder_differs_is_refused_with_the_reason(packs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "models"
    import_path(Store(other), minilm_package_dir(), version="2.0.0")

    async def run() -> None:
        service = InferenceService(ort_loader)
        await service.add(Store(other).load(APP, "2.0.0"))
        try:
            library = KnowledgeLibrary(packs.store, service)
            library.refresh()
            request = parse_search({"query": "main bearing torque"})
            with pytest.raises(PackRefused, match=r"embedded with minilm 1\.0\.0.*serves minilm "
                                                  r"2\.0\.0.*not comparable"):  # fmt: skip
                await library.search("manuals", request)
            status = library.status()["packs"]["manuals"]
            assert status["embedder_ok"] is False and "2.0.0" in status["embedder_note"]
            # Text search needs no embedder: still answers.
            _, hits = await library.search("manuals", parse_search({"query": "E-4711",
                                                                    "mode": "text"}))  # fmt: skip
            assert hits and hits[0].row.page == 5
        finally:
            await service.close()

    asyncio.run(run())


def test_absent_embedder_unknown_pack_and_long_query(live, packs) -> None:  # type: ignore[no-untyped-def]
    async def run() -> None:
        service = InferenceService(ort_loader)
        library = KnowledgeLibrary(packs.store, service)
        library.refresh()
        with pytest.raises(PackRefused, match=r"does not serve 'minilm'"):
            await library.search("manuals", parse_search({"query": "torque"}))
        with pytest.raises(ModelNotFound, match="no knowledge pack 'nope'"):
            await library.search("nope", parse_search({"query": "torque"}))

    asyncio.run(run())
    with pytest.raises(InvalidInput, match=r"query: \d+ tokens, but the embedder 'minilm' reads "
                                           r"at most 256"):  # fmt: skip
        live.search("manuals", {"query": "bearing " * 400})
    with pytest.raises(InvalidInput, match="filters: key 'colour'"):
        live.search("manuals", {"query": "x", "filters": {"type": "eq", "key": "colour",
                                                          "value": "red"}})  # fmt: skip
