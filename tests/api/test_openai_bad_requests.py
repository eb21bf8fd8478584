"""Chat bodies that used to answer HTTP 500 answer 400 naming the field (issue 25, item
13): ``tool_choice.function`` as a string, and tool-call ``arguments`` nested past any
parser's recursion limit. Over real HTTP on loopback: the route decodes the body before
any model is asked, so the server needs none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from runtime.config import Settings
from tests.support.http_server import ServerHandle, serving

TOOL = {
    "type": "function",
    "function": {"name": "stop_line", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with serving([], loader=None, settings=Settings()) as handle:
        yield handle


def _chat(server: ServerHandle, **fields: Any) -> httpx.Response:
    body = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}], **fields}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)


def test_tool_choice_function_as_a_string_is_a_400(server: ServerHandle) -> None:
    r = _chat(server, tools=[TOOL], tool_choice={"type": "function", "function": "stop_line"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("tool_choice.function: ")


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_tool_call_arguments_are_a_400(server: ServerHandle, depth: int) -> None:
    arguments = "[" * depth + "]" * depth
    call = {"id": "call_1", "type": "function",
            "function": {"name": "stop_line", "arguments": arguments}}  # fmt: skip
    messages = [
        {"role": "user", "content": "stop it"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "stopped"},
    ]
    r = _chat(server, tools=[TOOL], messages=messages)
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("messages[1].tool_calls[0].function.arguments: "), message
    assert "nests deeper than" in message
