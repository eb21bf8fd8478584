"""Chat over MQTT against a real GGUF model in llama.cpp: streamed and not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, site_settings
from tests.support.mqtt_client import Requester
from tests.support.prereq import need_module

need_module("llama_cpp")
pytestmark = pytest.mark.mqtt

CHAT = "headframe/mine/n1/models/assistant/chat"


@pytest.fixture
def harness(start_bridge: Callable[..., BridgeHarness], tmp_path: Path) -> BridgeHarness:
    from tests.support.text_models import write_text_package

    pkg = write_text_package(tmp_path / "store", variants=(("tiny-f32", "tiny", "f32"),))
    return start_bridge([pkg])


def _chat(stream: bool) -> dict[str, object]:
    return {
        "messages": [{"role": "user", "content": "Status of conveyor 4?"}],
        "max_tokens": 8,
        "temperature": 0,
        "seed": 1,
        "stream": stream,
    }


def test_chat_round_trip_streamed_and_not(broker: Mosquitto, harness: BridgeHarness) -> None:
    with Requester(broker.host, broker.port) as r:
        r.request(CHAT, _chat(False), correlation=b"plain")
        r.request(CHAT, _chat(True), correlation=b"stream")
        r.request(CHAT, {"messages": []}, correlation=b"bad")
        r.request("headframe/mine/n1/models/assistant/infer", {"inputs": []}, correlation=b"x")

        def done(r: Requester) -> bool:
            s = r.replies(b"stream")
            return (
                bool(r.replies(b"plain") and r.replies(b"bad") and r.replies(b"x"))
                and bool(s)
                and s[-1].get("data", {}).get("object", "chat.completion") == "chat.completion"
            )

        assert r.wait_for(done, timeout=60)
        plain = r.replies(b"plain")
        streamed = r.replies(b"stream")
    assert len(plain) == 1 and plain[0]["status"] == "ok"
    completion = plain[0]["data"]
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["role"] == "assistant"
    assert 1 <= completion["usage"]["completion_tokens"] <= 8

    # Chunks in order, then the final message; the text adds up to the final content.
    *chunks, final = streamed
    assert all(c["status"] == "ok" for c in streamed)
    assert {c["data"]["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["data"]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["data"]["choices"][0]["finish_reason"] in ("stop", "length")
    text = "".join(c["data"]["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == final["data"]["choices"][0]["message"]["content"]
    assert len({c["data"]["id"] for c in streamed}) == 1
    # Same seed, temperature 0: streaming changes the framing, not the words.
    assert text == completion["choices"][0]["message"]["content"]

    assert r.replies(b"bad")[0]["error"]["code"] == "invalid_input"
    assert r.replies(b"x")[0]["status"] == "error"  # a text app has no tensor endpoint


def test_info_names_only_the_topics_each_application_answers_and_chat_fingerprint_matches_http(
    broker: Mosquitto, tmp_path: Path
) -> None:
    """Issue 15 item 6: a tensor app lists no chat topic, a text app no infer topic; MQTT
    chat's system_fingerprint is the one HTTP's /v1/chat/completions gives."""
    import json

    import httpx

    from runtime.api.app import create_app
    from runtime.config import Settings
    from runtime.service import InferenceService
    from tests.support.http_server import running_server
    from tests.support.loaders import ort_loader
    from tests.support.serving_models import write_linear_package
    from tests.support.text_models import write_text_package

    store = tmp_path / "store"
    text = write_text_package(store, variants=(("tiny-f32", "tiny", "f32"),))
    tensor = write_linear_package(store)
    prefix = "headframe/mine/n1"
    info_topic = f"{prefix}/info"
    with BridgeHarness(site_settings(broker), [text, tensor], tmp_path / "state") as h:
        assert h.wait_connected()
        with Requester(broker.host, broker.port, subscribe=[info_topic]) as r:

            def info(r: Requester) -> dict[str, Any] | None:
                msgs = r.on_topic(info_topic)
                doc = json.loads(msgs[-1].payload) if msgs else None
                return doc if doc and len(doc["applications"]) == 2 else None

            assert r.wait_for(info)
            topics = {a["app"]: a["topics"] for a in info(r)["applications"]}  # type: ignore[index]
            r.request(CHAT, _chat(False), correlation=b"fp")
            assert r.wait_for(lambda r: r.replies(b"fp"), timeout=60)
            mqtt_reply = r.replies(b"fp")[0]
    assert topics["assistant"] == {"chat": CHAT, "result": f"{prefix}/models/assistant/result"}
    reader = f"{prefix}/models/part-id-reader"
    assert topics["part-id-reader"] == {"infer": f"{reader}/infer", "result": f"{reader}/result"}

    settings = Settings(paths={"state_dir": tmp_path / "http-state", "cache_dir": tmp_path / "c"})

    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(ort_loader)
        await service.add(text)
        return create_app(service, settings=settings), service

    async def close(service: InferenceService) -> None:
        await service.close()

    with running_server(build, close=close) as server:
        http = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={"model": "assistant", **_chat(False)},
            timeout=60,
        ).json()
    assert mqtt_reply["status"] == "ok"
    fingerprint = mqtt_reply["data"]["system_fingerprint"]
    assert fingerprint and fingerprint == http["system_fingerprint"]
