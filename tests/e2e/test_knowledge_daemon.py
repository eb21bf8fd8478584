"""The daemon serves knowledge packs as an operator runs it: `headframe serve` over a store
holding MiniLM and a pack; /status, the status page and /metrics show the pack; the
openai SDK searches it; a new version made active is picked up without a restart."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import openai
import pytest

from runtime.knowledge.pack import PackStore
from tests.support import daemon_proc
from tests.support.knowledge import Packs, make_packs
from tests.support.mosquitto import free_port
from tests.support.prereq import need_module

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> Packs:
    for name in ("torch", "transformers", "fpdf", "pypdf"):
        need_module(name)
    return make_packs(tmp_path_factory.mktemp("knowledge"), stdlib=False)


def test_the_daemon_lists_searches_and_switches_packs(packs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "store"
    shutil.copytree(packs.store, store)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = daemon_proc.write_config(tmp_path, store, port)
    config.write_text(config.read_text().replace("[paths]\n", "[paths]\nstore_watch_s = 0.5\n"))
    proc = daemon_proc.start(config)
    try:
        daemon_proc.wait_ready(url, proc)
        section = httpx.get(f"{url}/status").json()["knowledge"]["packs"]["manuals"]
        assert section["version"] == "1.0.0" and section["embedder_ok"] is True
        assert section["embedder"]["app"] == "minilm" and section["index"] == "exact"
        assert section["chunks"] > 5 and section["index_bytes"] > 0
        assert section["last_query_ms"] is None

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
        page = client.vector_stores.search("manuals", query="What torque for the main bearing?")
        assert page.data[0].attributes["page"] == 2  # type: ignore[index]

        section = httpx.get(f"{url}/status").json()["knowledge"]["packs"]["manuals"]
        assert section["queries"] == 1 and section["last_query_ms"] > 0
        metrics = httpx.get(f"{url}/metrics").text
        assert (
            'headframe_knowledge_queries_total{mode="hybrid",pack="manuals",status="ok"} 1.0'
            in metrics
        )
        assert "headframe_knowledge_query_seconds_bucket" in metrics
        assert "manuals" in httpx.get(f"{url}/").text

        # A new version, made active by its pointer: served within the watch period.
        old = store / "_knowledge" / "manuals" / "1.0.0"
        new = old.parent / "1.1.0"
        shutil.copytree(old, new)
        doc = json.loads((new / "manifest.json").read_text())
        (new / "manifest.json").write_text(json.dumps({**doc, "version": "1.1.0"}))
        PackStore(store).set_active("manuals", "1.1.0")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            section = httpx.get(f"{url}/status").json()["knowledge"]["packs"]["manuals"]
            if section["version"] == "1.1.0":
                break
            time.sleep(0.2)
        assert section["version"] == "1.1.0"
        page = client.vector_stores.search("manuals", query="E-4711")
        assert page.data[0].attributes["pack_version"] == "1.1.0"  # type: ignore[index]
    finally:
        daemon_proc.stop(proc)
