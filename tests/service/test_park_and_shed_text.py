"""The governor's actuators on a real GGUF text application (llama.cpp), over the OpenAI
routes on loopback: shedding answers chat and completions 429 with Retry-After in
OpenAI's error shape, then 200 after it stops; an idle-unloaded (parked) text app stays
ready and listed, and the first request after parking (plain or streamed) waits for the
reload and says how long in X-Headframe-Reload-Ms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.catalog import Store
from runtime.config import Settings
from runtime.service import InferenceService
from runtime.service.load_shed import LoadShed
from tests.support.embedding_models import write_gguf_embedding_package
from tests.support.http_server import ServerHandle, running_server
from tests.support.loaders import ort_loader
from tests.support.prereq import need_module

need_module("llama_cpp")  # every test here runs llama.cpp

pytestmark = pytest.mark.slow

APP = "assistant"
EMBEDDER = "gguf-embedder"
EMBED = {"model": EMBEDDER, "input": ["conveyor belt torn"]}
CHAT = {"model": APP, "messages": [{"role": "user", "content": "belt status"}],
        "max_tokens": 4, "seed": 1}  # fmt: skip


@pytest.fixture(scope="module")
def served(
    text_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerHandle, LoadShed]]:
    shed = LoadShed()
    embedder = write_gguf_embedding_package(tmp_path_factory.mktemp("embed-store"))

    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(ort_loader)
        await service.add(Store(text_store).load(APP), "tiny-f32")
        await service.add(embedder)
        app = create_app(service, settings=Settings(demo=False), context=ServerContext(), shed=shed)
        return app, service

    async def close(service: InferenceService) -> None:
        await service.close()

    with running_server(build, close=close) as handle:
        yield handle, shed


def test_chat_and_completions_are_shed_with_429_then_served(
    served: tuple[ServerHandle, LoadShed],
) -> None:
    h, shed = served
    with httpx.Client(base_url=h.url, timeout=60) as http:
        shed.start("memory hard: 3% available", 1.2)
        try:
            r = http.post("/v1/chat/completions", json=CHAT)
            assert r.status_code == 429
            assert r.headers["retry-after"] == "2"
            err = r.json()["error"]
            assert err["code"] == "shedding" and "memory hard: 3% available" in err["message"]
            stream = http.post("/v1/chat/completions", json={**CHAT, "stream": True})
            assert stream.status_code == 429
            comp = {"model": APP, "prompt": "pump", "max_tokens": 2}
            assert http.post("/v1/completions", json=comp).status_code == 429
            embed = http.post("/v1/embeddings", json=EMBED)
            assert embed.status_code == 429 and embed.json()["error"]["code"] == "shedding"
            assert http.get("/v1/models").status_code == 200  # listing is never shed
        finally:
            shed.stop()
        r = http.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] is not None
        assert http.post("/v1/embeddings", json=EMBED).status_code == 200


def test_a_parked_text_app_stays_ready_and_reloads_on_the_next_request(
    served: tuple[ServerHandle, LoadShed],
) -> None:
    h, _ = served
    service: InferenceService = h.extra
    with httpx.Client(base_url=h.url, timeout=60) as http:
        warm = http.post("/v1/chat/completions", json=CHAT)
        assert warm.status_code == 200 and "x-headframe-reload-ms" not in warm.headers

        assert h.call(lambda: service.park(APP)) is True
        assert http.get("/v2/health/ready").json() == {"ready": True}
        assert APP in [m["id"] for m in http.get("/v1/models").json()["data"]]
        state = next(a for a in http.get("/status").json()["applications"] if a["app"] == APP)
        assert state["state"].startswith("parked (idle since ")

        cold = http.post("/v1/chat/completions", json=CHAT)
        assert cold.status_code == 200, cold.text
        assert int(cold.headers["x-headframe-reload-ms"]) > 0  # a GGUF load takes time
        # The same model and seed: the same text as before parking.
        assert cold.json()["choices"] == warm.json()["choices"]

        assert h.call(lambda: service.park(APP)) is True
        with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as s:
            assert s.status_code == 200
            assert int(s.headers["x-headframe-reload-ms"]) > 0
            body = "".join(s.iter_text())
        assert body.rstrip().endswith("data: [DONE]")


def test_a_parked_embedding_app_reloads_and_says_so(
    served: tuple[ServerHandle, LoadShed],
) -> None:
    h, _ = served
    service: InferenceService = h.extra
    with httpx.Client(base_url=h.url, timeout=60) as http:
        warm = http.post("/v1/embeddings", json=EMBED)
        assert warm.status_code == 200, warm.text
        assert h.call(lambda: service.park(EMBEDDER)) is True
        cold = http.post("/v1/embeddings", json=EMBED)
        assert cold.status_code == 200, cold.text
        assert int(cold.headers["x-headframe-reload-ms"]) > 0
        assert cold.json()["data"] == warm.json()["data"]
