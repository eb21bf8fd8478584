"""The site-knowledge story end to end, as README.md and docs/text.md tell it, with the real
MiniLM encoder: `headframe knowledge build` (with golden questions) -> `headframe publish`
-> a box running `headframe serve` with [fleet] syncs the pack (trial on its golden
questions) -> `/v1/vector_stores/{pack}/search` with the openai SDK and a grounded chat
whose answer cites the manual's page; a new version published while clients search is
taken with zero failed queries; the fleet reports the pack on /status, /metrics and the
retained MQTT fleet/state."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from runtime.cli import app
from tests.support.fleet_box import running_daemon, served_box_config, wait_for
from tests.support.knowledge import as_version, write_manual_golden, write_manual_pdf
from tests.support.minilm import minilm_store
from tests.support.mosquitto import Mosquitto, require_mosquitto
from tests.support.mqtt_client import Requester
from tests.support.prereq import need_module
from tests.support.static_server import StaticServer
from tests.support.text_models import write_text_package

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]


def cli(*args: str | Path) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr or result.stdout
    return result.stdout


def pack_on_box(url: str) -> dict[str, Any]:
    status = httpx.get(f"{url}/status", timeout=10).json()
    return {"fleet": status["fleet"]["packs"]["manuals"],
            "served": status["knowledge"]["packs"]["manuals"]}  # fmt: skip


def test_build_publish_sync_search_and_grounded_chat(
    tmp_path: Path, keys_dir: Path, repo_dir: Path, server: StaticServer
) -> None:
    for name in ("torch", "transformers", "fpdf", "pypdf", "llama_cpp"):
        need_module(name)
    require_mosquitto()
    # The cloud side: a pack built from the manual, with golden questions, then published.
    cloud = minilm_store(tmp_path / "cloud" / "store")
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = write_manual_pdf(docs / "manual.pdf")
    golden = write_manual_golden(docs / "golden.json")
    out = cli("knowledge", "build", pdf, "--embedder", "minilm", "--pack", "manuals",
              "--version", "1.0.0", "--store", cloud, "--golden", golden)  # fmt: skip
    assert "golden: recall@5 100.0%" in out
    built = cloud / "_knowledge" / "manuals" / "1.0.0"
    out = cli("publish", built, "--repo", repo_dir, "--keys", keys_dir)
    assert "published knowledge pack manuals 1.0.0" in out

    # The box: MiniLM and a (random-weight) text model, no pack; [fleet] and [mqtt].
    box_store = minilm_store(tmp_path / "box" / "store")
    write_text_package(box_store, variants=(("tiny-f32", "tiny", "f32"),))
    broker = Mosquitto(tmp_path / "broker").start()
    mqtt = (f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nsite = "mine"\n'
            'node = "box1"\n')  # fmt: skip
    cfg, url = served_box_config(
        tmp_path, url=server.url, trusted_root=repo_dir / "metadata" / "1.root.json",
        sections=mqtt, poll_interval_s=5,
    )  # fmt: skip
    state_topic = "headframe/mine/box1/fleet/state"
    log = tmp_path / "daemon.log"
    try:
        with (
            running_daemon(cfg, log) as proc,
            Requester(broker.host, broker.port, subscribe=[state_topic]) as mqtt_client,
        ):
            wait_for(lambda: pack_on_box(url)["served"]["version"] == "1.0.0", "pack synced",
                     proc, log)  # fmt: skip
            fleet = pack_on_box(url)["fleet"]
            assert fleet["active"] == "1.0.0" and fleet["stage"] == "active"
            assert "golden recall@5 10000 bp (4 of 4 questions)" in fleet["reason"]

            client = openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)
            question = "What torque for the main bearing bolts?"
            page = client.vector_stores.search("manuals", query=question)
            assert page.data[0].filename == "manual.pdf"
            assert page.data[0].attributes["page"] == 2  # type: ignore[index]
            assert "450 Nm" in page.data[0].content[0].text
            chat = client.chat.completions.create(
                model="assistant", max_tokens=8,
                messages=[{"role": "user", "content": question}],
                extra_body={"knowledge": ["manuals"]},
            )  # fmt: skip
            cited = chat.model_extra["citations"]  # type: ignore[index]
            assert cited[0]["file"] == "manual.pdf" and cited[0]["page"] == 2
            assert cited[0]["id"].startswith("manuals@1.0.0#")

            # 1.1.0 published while clients search: taken with zero failed queries.
            codes: list[int] = []
            versions: set[str] = set()
            stop = threading.Event()

            def search() -> None:
                with httpx.Client(base_url=url, timeout=30) as c:
                    while not stop.is_set():
                        r = c.post("/v1/vector_stores/manuals/search",
                                   json={"query": "What does error code E-4711 mean?"})  # fmt: skip
                        codes.append(r.status_code)
                        if r.status_code == 200:
                            versions.add(r.json()["data"][0]["attributes"]["pack_version"])

            threads = [threading.Thread(target=search) for _ in range(2)]
            for t in threads:
                t.start()
            try:
                newer = as_version(built, tmp_path / "release", "1.1.0")
                cli("publish", newer, "--repo", repo_dir, "--keys", keys_dir)
                wait_for(lambda: pack_on_box(url)["served"]["version"] == "1.1.0", "1.1.0",
                         proc, log)  # fmt: skip
                wait_for(lambda: "1.1.0" in versions, "a query answered by 1.1.0", proc, log)
            finally:
                stop.set()
                for t in threads:
                    t.join(30)
            assert codes and set(codes) == {200}, f"{len(codes)} queries: {set(codes)}"
            assert versions == {"1.0.0", "1.1.0"}
            fleet = pack_on_box(url)["fleet"]
            assert (fleet["active"], fleet["previous"]) == ("1.1.0", "1.0.0")
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            assert 'headframe_fleet_pack_stage{pack="manuals",stage="active"} 1.0' in metrics

            def reported(r: Requester) -> bool:
                docs = [json.loads(m.payload) for m in r.on_topic(state_topic)]
                return any(d.get("packs", {}).get("manuals", {}).get("active") == "1.1.0"
                           for d in docs)  # fmt: skip

            assert mqtt_client.wait_for(reported, timeout=30)
    finally:
        broker.stop()
