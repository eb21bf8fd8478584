"""Knowledge packs delivered like models, with the real MiniLM encoder: published as signed
targets (integer-only custom metadata), synced by the box's agent (resumable download,
staged, trial on its golden questions), switched under query load with zero failed
queries, bad versions and rollback; a pack whose embedder differs is refused with the
reason, or embedded again on the box when the setting allows it."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.prereq import need_module

for _name in ("torch", "transformers", "fpdf", "pypdf"):
    need_module(_name)

from runtime.catalog import Store  # noqa: E402
from runtime.catalog.add import import_path  # noqa: E402
from runtime.config import Settings  # noqa: E402
from runtime.fleet.agent import FleetAgent  # noqa: E402
from runtime.fleet.pack_host import LoopPackHost  # noqa: E402
from runtime.fleet.publish import publish_all  # noqa: E402
from runtime.fleet.releases import parse_pack_releases  # noqa: E402
from runtime.fleet.wiring import build_agent  # noqa: E402
from runtime.knowledge.library import KnowledgeLibrary  # noqa: E402
from runtime.knowledge.pack import PackStore  # noqa: E402
from runtime.knowledge.search import parse_search  # noqa: E402
from runtime.service import InferenceService  # noqa: E402
from tests.support.knowledge import (  # noqa: E402
    as_version,
    build,
    with_golden_chunks,
    write_manual_golden,
    write_manual_pdf,
)
from tests.support.loaders import ort_loader  # noqa: E402
from tests.support.loop_thread import LoopThread  # noqa: E402
from tests.support.minilm import APP, minilm_package_dir, minilm_store  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``manuals`` 1.0.0 built with MiniLM and the manual's golden questions: its version
    directory (the build's store also holds MiniLM 1.0.0)."""
    root = tmp_path_factory.mktemp("build")
    store = minilm_store(root / "store")
    pdf = write_manual_pdf(root / "manual.pdf")
    report = build(store, [pdf], "manuals", "1.0.0", golden=write_manual_golden(root / "g.json"))
    assert report.golden is not None and report.golden.recall_bp == 10_000
    return Path(report.path)


@dataclass
class Box:
    loop: LoopThread
    service: InferenceService
    library: KnowledgeLibrary
    agent: FleetAgent
    store: Path

    def search(self, query: str) -> tuple[str, Any]:
        opened, hits = self.loop.call(
            self.library.search("manuals", parse_search({"query": query}))
        )
        return opened.version, hits


def _box(
    tmp_path: Path, repo: Path, embedder_version: str = "1.0.0", **fleet: Any
) -> Iterator[Box]:
    """A box serving MiniLM ``embedder_version`` (no packs yet), its library and an agent
    that takes packs through the library's service (the daemon's wiring)."""
    store = tmp_path / "box" / "store"
    import_path(Store(store), minilm_package_dir(), version=embedder_version)
    settings = Settings(
        demo=False,
        paths={"state_dir": tmp_path / "box", "store_dir": store},
        fleet={"url": repo.as_uri(), "trusted_root": repo / "metadata" / "1.root.json",
               "node_id": "box-1", **fleet},
    )  # fmt: skip
    with LoopThread() as loop:

        async def start() -> InferenceService:
            service = InferenceService(ort_loader)
            await service.add(Store(store).load(APP))
            return service

        service = loop.call(start(), 120)
        library = KnowledgeLibrary(store, service)
        library.refresh()
        agent = build_agent(
            settings, chooser=lambda p, v: ([], "no models here"), loader=lambda p, pin: None,
            pack_host=LoopPackHost(library, service, loop.loop),
        )  # fmt: skip
        try:
            yield Box(loop, service, library, agent, store)
        finally:
            loop.call(service.close(), 30)


@pytest.fixture
def box(tmp_path: Path, repo_dir: Path, keys_dir: Path, built: Path) -> Iterator[Box]:
    publish_all(repo_dir, keys_dir, [built])
    yield from _box(tmp_path, repo_dir)


def test_a_pack_is_published_as_signed_targets_with_integer_metadata(
    built: Path, repo_dir: Path, keys_dir: Path
) -> None:
    done = publish_all(repo_dir, keys_dir, [built], channel="canary", rollout=20)
    assert [m.pack for m in done.packs] == ["manuals"] and not done.packages
    signed = json.loads((repo_dir / "metadata" / "targets.json").read_text())["signed"]
    paths = sorted(signed["targets"])
    assert "_knowledge/manuals/1.0.0/manifest.json" in paths
    assert {"_knowledge/manuals/1.0.0/chunks.sqlite", "_knowledge/manuals/1.0.0/vectors.npy",
            "_knowledge/manuals/1.0.0/golden.json"} <= set(paths)  # fmt: skip
    custom = signed["targets"]["_knowledge/manuals/1.0.0/manifest.json"]["custom"]["headframe"]
    assert custom["kind"] == "pack" and custom["channels"] == {"canary": 20}
    assert custom["embedder"]["app"] == APP and custom["embedder"]["dimensions"] == 384
    assert custom["golden"] == {"questions": 4, "k": 5, "recall_floor_bp": 8000,
                                "recall_bp": 10_000}  # fmt: skip

    def no_floats(v: Any) -> bool:
        if isinstance(v, dict):
            return all(no_floats(x) for x in v.values())
        if isinstance(v, list):
            return all(no_floats(x) for x in v)
        return not isinstance(v, float)

    assert no_floats(signed["targets"])
    from tuf.api.metadata import Metadata

    md = Metadata.from_file(str(repo_dir / "metadata" / "targets.json"))
    [release] = parse_pack_releases(md.signed.targets)["manuals"]  # type: ignore[attr-defined]
    assert release.version == "1.0.0" and release.rollout_for("stable") == 0
    # Other bytes under a published version are refused.
    spoiled = as_version(built, repo_dir.parent / "spoiled", "1.0.0")
    with_golden_chunks(spoiled, [0])
    with pytest.raises(Exception, match="already published with different content"):
        publish_all(repo_dir, keys_dir, [spoiled])


def test_the_box_syncs_a_pack_then_swaps_it_under_query_load(
    box: Box, built: Path, repo_dir: Path, keys_dir: Path, tmp_path: Path
) -> None:
    report = box.agent.sync_once()
    assert report.outcomes["_knowledge/manuals"] == "updated", box.agent.status()["packs"]
    status = box.agent.status()["packs"]["manuals"]
    assert status["active"] == "1.0.0" and status["stage"] == "active"
    assert "golden recall@5 10000 bp (4 of 4 questions)" in status["reason"]
    version, hits = box.search("What torque for the main bearing bolts?")
    assert version == "1.0.0" and hits[0].row.page == 2

    publish_all(repo_dir, keys_dir, [as_version(built, tmp_path / "v", "1.1.0")])
    stop = threading.Event()
    seen: set[str] = set()
    failures: list[BaseException] = []
    answered = [0]

    def load() -> None:
        while not stop.is_set():
            try:
                v, found = box.search("What does error code E-4711 mean?")
                assert found and found[0].row.page == 5
                seen.add(v)
                answered[0] += 1
            except BaseException as e:  # every failure counts
                failures.append(e)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        report = box.agent.sync_once()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert report.outcomes["_knowledge/manuals"] == "updated"
    assert failures == [] and answered[0] > 0
    assert box.search("torque")[0] == "1.1.0" and "1.0.0" in seen
    status = box.agent.status()["packs"]["manuals"]
    assert (status["active"], status["previous"]) == ("1.1.0", "1.0.0")

    # A version below its golden floor: marked bad, never retried; 1.1.0 keeps serving.
    bad = as_version(built, tmp_path / "v", "1.2.0")
    with_golden_chunks(bad, [0])  # chunk 0 (Safety) answers none of the questions
    publish_all(repo_dir, keys_dir, [bad])
    assert box.agent.sync_once().outcomes["_knowledge/manuals"] == "failed"
    status = box.agent.status()["packs"]["manuals"]
    assert status["active"] == "1.1.0" and status["stage"] == "failed"
    assert "1.2.0 rejected: golden recall@5 " in status["reason"]
    assert "below the floor 8000 bp" in status["reason"] and "1.2.0" in status["bad"]
    assert box.search("torque")[0] == "1.1.0"
    assert PackStore(box.store).versions("manuals") == ["1.0.0", "1.1.0"]
    assert box.agent.sync_once().outcomes["_knowledge/manuals"] == "current"

    # Rollback: the previous version serves again, the one rolled back from is bad.
    assert box.agent.rollback_pack("manuals") == ("1.1.0", "1.0.0")
    assert box.search("torque")[0] == "1.0.0"
    status = box.agent.status()["packs"]["manuals"]
    assert status["stage"] == "rolled_back" and "1.1.0" in status["bad"]
    assert box.agent.sync_once().outcomes["_knowledge/manuals"] == "current"
    assert box.search("torque")[0] == "1.0.0"


def test_a_pack_whose_embedder_differs_is_refused_with_the_reason(
    tmp_path: Path, repo_dir: Path, keys_dir: Path, built: Path
) -> None:
    publish_all(repo_dir, keys_dir, [built])
    for box in _box(tmp_path, repo_dir, embedder_version="2.0.0"):
        report = box.agent.sync_once()
        assert report.outcomes["_knowledge/manuals"] == "refused" and not report.current
        status = box.agent.status()["packs"]["manuals"]
        assert status["stage"] == "refused" and status["active"] is None
        assert "1.0.0 refused: the pack was embedded with minilm 1.0.0" in status["reason"]
        assert "serves minilm 2.0.0" in status["reason"] and "reembed_packs" in status["reason"]
        assert status["bad"] == {}  # checked again next cycle, never marked bad
        assert PackStore(box.store).packs() == []
        blobs = box.store / ".fleet" / "blobs"
        assert not blobs.exists() or not any(blobs.iterdir())  # refused before downloading


def test_with_reembed_packs_the_box_embeds_a_pack_again(
    tmp_path: Path, repo_dir: Path, keys_dir: Path, built: Path
) -> None:
    publish_all(repo_dir, keys_dir, [built])
    for box in _box(tmp_path, repo_dir, embedder_version="2.0.0", reembed_packs=True):
        report = box.agent.sync_once()
        assert report.outcomes["_knowledge/manuals"] == "updated", box.agent.status()["packs"]
        status = box.agent.status()["packs"]["manuals"]
        assert "embedded again on this box with minilm 2.0.0" in status["reason"]
        assert "golden recall@5 10000 bp" in status["reason"]
        _, manifest = PackStore(box.store).manifest("manuals")
        assert manifest.embedder.version == "2.0.0"
        assert manifest.reembedded_from is not None and manifest.reembedded_from.version == "1.0.0"
        version, hits = box.search("What torque for the main bearing bolts?")
        assert version == "1.0.0" and hits[0].row.page == 2
        assert box.library.status()["packs"]["manuals"]["embedder_ok"] is True
        # The blobs are the signed bytes still: the new vectors never wrote through them.
        for blob in (box.store / ".fleet" / "blobs").iterdir():
            from runtime.files import sha256_file

            assert sha256_file(blob) == blob.name
        # What the box made is its own: publishing it from here is refused.
        copy = tmp_path / "copy" / "manuals" / "1.0.0"
        shutil.copytree(PackStore(box.store).version_dir("manuals", "1.0.0"), copy)
        with pytest.raises(Exception, match="embedded again on a box"):
            publish_all(repo_dir, keys_dir, [copy])


def test_fleet_sync_on_the_command_line_takes_packs_too(
    tmp_path: Path, repo_dir: Path, keys_dir: Path, built: Path
) -> None:
    # No daemon: `fleet sync --once` loads the box's embedder in its own process for the
    # trial; `fleet status` and `rollback --pack` report and undo like for a model.
    from typer.testing import CliRunner

    from runtime.cli import app
    from tests.support.fleet_repo import write_box_config

    def cli(*args: str | Path) -> tuple[int, str]:
        result = CliRunner().invoke(app, [str(a) for a in args])
        return result.exit_code, result.stdout + result.stderr

    publish_all(repo_dir, keys_dir, [built])
    state = tmp_path / "box"
    import_path(Store(state / "store"), minilm_package_dir())
    cfg = write_box_config(tmp_path / "box.toml", state=state, url=repo_dir.as_uri(),
                           trusted_root=repo_dir / "metadata" / "1.root.json")  # fmt: skip
    code, out = cli("fleet", "sync", "--once", "--config", cfg)
    assert code == 0, out
    assert "knowledge pack manuals: updated - active: 1.0.0 active; golden recall@5" in out
    publish_all(repo_dir, keys_dir, [as_version(built, tmp_path / "v", "1.1.0")])
    code, out = cli("fleet", "sync", "--once", "--config", cfg)
    assert code == 0, out
    code, out = cli("fleet", "status", "--json", "--config", cfg)
    packs = json.loads(out)["packs"]
    assert packs["manuals"]["active"] == "1.1.0" and packs["manuals"]["previous"] == "1.0.0"
    assert "golden recall@5 10000 bp" in packs["manuals"]["reason"]
    code, out = cli("rollback", "manuals", "--pack", "--config", cfg)
    assert code == 0 and "knowledge pack manuals: rolled back from 1.1.0 to 1.0.0" in out
    assert PackStore(state / "store").active_version("manuals") == "1.0.0"
    code, out = cli("rollback", "manuals", "--pack", "--config", cfg)
    assert code == 2 and "no previous version" in out
