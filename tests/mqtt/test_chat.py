"""Chat over MQTT against a real GGUF model in llama.cpp: streamed and not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, site_settings
from tests.support.mqtt_client import Requester
from tests.support.prereq import need_module

need_module("llama_cpp")
pytestmark = pytest.mark.mqtt

CHAT = "headframe/mine/n1/models/assistant/chat"


@pytest.fixture
def harness(broker: Mosquitto, tmp_path: Path) -> Iterator[BridgeHarness]:
    from tests.support.text_models import write_text_package

    pkg = write_text_package(tmp_path / "store", variants=(("tiny-f32", "tiny", "f32"),))
    s = site_settings(broker)
    with BridgeHarness(s, [pkg], tmp_path / "state") as h:
        assert h.wait_connected()
        yield h


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
