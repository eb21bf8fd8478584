"""Embeddings and a schema-constrained chat over MQTT through a real Mosquitto: the same
bodies and answers as over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness
from tests.support.mqtt_client import Requester
from tests.support.prereq import need_module

need_module("llama_cpp")
need_module("tokenizers")
pytestmark = pytest.mark.mqtt

MODELS = "headframe/mine/n1/models"
SCHEMA = {
    "type": "object",
    "properties": {
        "severity": {"type": "integer", "minimum": 1, "maximum": 5},
        "action": {"type": "string", "enum": ["stop", "inspect", "ignore"]},
    },
    "required": ["severity", "action"],
}

TOOL = {
    "type": "function",
    "function": {
        "name": "stop_line",
        "parameters": {
            "type": "object",
            "properties": {"line": {"type": "string", "enum": ["crusher", "screen"]}},
            "required": ["line"],
        },
    },
}


@pytest.fixture
def harness(start_bridge: Callable[..., BridgeHarness], tmp_path: Path) -> BridgeHarness:
    from tests.support.embedding_models import write_onnx_encoder_package
    from tests.support.text_models import write_text_package

    store = tmp_path / "store"
    return start_bridge(
        [
            write_text_package(store, variants=(("tiny-f32", "tiny", "f32"),)),
            write_onnx_encoder_package(store),
        ]
    )


def test_embed_and_schema_chat(broker: Mosquitto, harness: BridgeHarness) -> None:
    texts = ["belt fault", "pump pressure high"]
    chat = {
        "messages": [{"role": "user", "content": "triage the alarm"}],
        "max_tokens": 200,
        "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}},
    }
    with Requester(broker.host, broker.port) as r:
        r.request(f"{MODELS}/encoder/embed", {"input": texts}, correlation=b"f")
        r.request(
            f"{MODELS}/encoder/embed",
            {"input": texts, "encoding_format": "base64"},
            correlation=b"b",
        )
        r.request(f"{MODELS}/encoder/embed", {"input": []}, correlation=b"bad")
        r.request(f"{MODELS}/assistant/embed", {"input": "x"}, correlation=b"text-app")
        r.request(f"{MODELS}/assistant/chat", chat, correlation=b"chat")
        r.request(f"{MODELS}/assistant/chat", {**chat, "stream": True}, correlation=b"s")
        bad_schema = {**chat, "response_format": {"type": "json_schema", "json_schema": {
            "name": "t", "schema": {"type": "string", "format": "email"}}}}  # fmt: skip
        r.request(f"{MODELS}/assistant/chat", bad_schema, correlation=b"bad-schema")
        tool_chat = {
            "messages": [{"role": "user", "content": "stop the crusher"}],
            "max_tokens": 200,
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "stop_line"}},
        }
        r.request(f"{MODELS}/assistant/chat", tool_chat, correlation=b"tool")

        keys = (b"f", b"b", b"bad", b"text-app", b"chat", b"bad-schema", b"tool")

        def done(r: Requester) -> bool:
            s = r.replies(b"s")
            final = bool(s) and s[-1].get("data", {}).get("object") == "chat.completion"
            return final and all(r.replies(k) for k in keys)

        assert r.wait_for(done, timeout=60)
        floats = r.replies(b"f")[0]
        b64 = r.replies(b"b")[0]
        streamed = r.replies(b"s")
        chat_reply = r.replies(b"chat")[0]
        errors = {k: r.replies(k)[0] for k in (b"bad", b"text-app", b"bad-schema")}
        tool_reply = r.replies(b"tool")[0]

    assert floats["status"] == "ok" and floats["data"]["object"] == "list"
    vectors = np.array([d["embedding"] for d in floats["data"]["data"]], dtype=np.float32)
    assert vectors.shape[0] == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    decoded = np.array(
        [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in b64["data"]["data"]]
    )
    assert np.array_equal(decoded, vectors)
    assert floats["data"]["usage"]["prompt_tokens"] == 5

    content = chat_reply["data"]["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content), SCHEMA)
    *chunks, final = streamed
    text = "".join(c["data"]["choices"][0]["delta"].get("content", "") for c in chunks)
    jsonschema.validate(json.loads(text), SCHEMA)
    assert final["data"]["choices"][0]["message"]["content"] == text

    assert errors[b"bad"]["error"]["code"] == "invalid_input"
    assert "not an embedding" in errors[b"text-app"]["error"]["message"]
    assert "'format'" in errors[b"bad-schema"]["error"]["message"]

    choice = tool_reply["data"]["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "stop_line"
    jsonschema.validate(json.loads(call["function"]["arguments"]), TOOL["function"]["parameters"])
