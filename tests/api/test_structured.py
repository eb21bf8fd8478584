"""response_format and tool calls through the openai SDK against a real server on
loopback, on a random-weight GGUF: what comes back parses and validates, streamed or not."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.support.prereq import need_module
from tests.support.text_servers import Server

need_module("llama_cpp")  # every test here runs llama.cpp

pytestmark = pytest.mark.slow

APP = "assistant"
ASK = [{"role": "user", "content": "report the conveyor status"}]
INCIDENT = {
    "type": "object",
    "properties": {
        "line": {"type": "string", "enum": ["crusher", "screen", "feeder"]},
        "severity": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "maxLength": 40},
        "parts": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
        "resolved": {"type": "boolean"},
    },
    "required": ["line", "severity", "summary"],
    "additionalProperties": False,
}
SCHEMA_FORMAT = {"type": "json_schema", "json_schema": {"name": "incident", "schema": INCIDENT}}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_sensor",
        "description": "Read one sensor",
        "parameters": {
            "type": "object",
            "properties": {
                "sensor": {"type": "string", "enum": ["belt-speed", "motor-temp"]},
                "window_s": {"type": "integer", "minimum": 1, "maximum": 600},
            },
            "required": ["sensor", "window_s"],
        },
    },
}
STOP = {
    "type": "function",
    "function": {
        "name": "stop_line",
        "parameters": {
            "type": "object",
            "properties": {"line": {"type": "string", "maxLength": 10}},
            "required": ["line"],
        },
    },
}


@pytest.fixture(scope="module")
def client(agent_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=agent_server.url + "/v1", api_key="unused", max_retries=0)


def _chat(client: openai.OpenAI, **kw: Any) -> Any:
    kw.setdefault("messages", ASK)
    kw.setdefault("max_tokens", 400)
    return client.chat.completions.create(model=APP, **kw)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_validates_streamed_and_not(client: openai.OpenAI, seed: int) -> None:
    r = _chat(client, response_format=SCHEMA_FORMAT, seed=seed)
    assert r.choices[0].finish_reason == "stop"
    doc = json.loads(r.choices[0].message.content)
    jsonschema.validate(doc, INCIDENT)
    stream = _chat(client, response_format=SCHEMA_FORMAT, seed=seed, stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len([p for p in pieces if p]) > 3  # really streamed, token by token
    assert "".join(pieces) == r.choices[0].message.content  # same seed, same words


def test_json_object_parses_and_completions_take_a_schema_too(client: openai.OpenAI) -> None:
    r = _chat(client, response_format={"type": "json_object"}, seed=4, max_tokens=1500)
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    c = client.completions.create(
        model=APP, prompt="incident:", max_tokens=400, seed=5,
        extra_body={"response_format": SCHEMA_FORMAT},
    )  # fmt: skip
    jsonschema.validate(json.loads(c.choices[0].text), INCIDENT)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "string", "pattern": "^a"}}}}, "'pattern'"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "schema is required"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"logit_bias": {"50": 10}}, "logit_bias"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"a": {"type": "string", "format": "email"}}}}}]},
         r"tools\[0\].function.parameters: JSON Schema keyword 'format'"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
         "no tool named 'nope'"),
        ({"tool_choice": "required"}, "offers no tools"),
    ],
)  # fmt: skip
def test_what_cannot_be_honoured_is_a_400(
    agent_server: Server, client: openai.OpenAI, extra: dict[str, Any], message: str
) -> None:
    body = {"model": APP, "messages": ASK, "max_tokens": 4, **extra}
    r = httpx.post(agent_server.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert re.search(message, r.json()["error"]["message"]), r.text
    assert _chat(client, max_tokens=2).choices[0].message.content  # still serving


def test_harmless_fields_real_clients_send_are_accepted(client: openai.OpenAI) -> None:
    r = _chat(
        client, max_tokens=3, user="op-7", metadata={"site": "mine"}, store=False,
        stream=True, stream_options={"include_usage": True}, parallel_tool_calls=True,
    )  # fmt: skip
    chunks = list(r)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def _args(call: Any, tool: dict[str, Any]) -> dict[str, Any]:
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, tool["function"]["parameters"])
    return args


@pytest.mark.parametrize("seed", [1, 2])
def test_named_tool_choice_gives_a_valid_call(client: openai.OpenAI, seed: int) -> None:
    choice = {"type": "function", "function": {"name": "stop_line"}}
    r = _chat(client, tools=[WEATHER, STOP], tool_choice=choice, seed=seed)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert msg.content is None and len(msg.tool_calls) == 1
    call = msg.tool_calls[0]
    assert call.type == "function" and call.function.name == "stop_line"
    assert call.id.startswith("call_")
    _args(call, STOP)


def test_required_and_streamed_calls_arrive_in_the_tool_calls_shape(client: openai.OpenAI) -> None:
    r = _chat(client, tools=[WEATHER, STOP], tool_choice="required", seed=3, stream=True)
    chunks = [c for c in r if c.choices]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not "".join(c.choices[0].delta.content or "" for c in chunks)
    tool = WEATHER if calls[0].function.name == "get_sensor" else STOP
    _args(calls[0], tool)


def test_none_gives_text_and_auto_gives_text_or_a_valid_call(client: openai.OpenAI) -> None:
    r = _chat(client, tools=[WEATHER], tool_choice="none", max_tokens=8, seed=1)
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content
    for seed in range(4):
        r = _chat(client, tools=[WEATHER, STOP], seed=seed, max_tokens=200)
        msg = r.choices[0].message
        if msg.tool_calls:
            tool = WEATHER if msg.tool_calls[0].function.name == "get_sensor" else STOP
            _args(msg.tool_calls[0], tool)
        else:
            assert msg.content and not msg.content.startswith("{")


def test_an_agent_loop_with_the_tool_result_sent_back(client: openai.OpenAI) -> None:
    """The docs' agent loop: the model calls a tool, the client runs it and sends the
    result back as a ``role: tool`` message, the model answers."""
    messages: list[Any] = [{"role": "user", "content": "what is the belt speed?"}]
    choice = {"type": "function", "function": {"name": "get_sensor"}}
    first = _chat(client, messages=messages, tools=[WEATHER], tool_choice=choice, seed=9)
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "2.1 m/s"})
    final = _chat(client, messages=messages, tools=[WEATHER], max_tokens=12, seed=9)
    assert final.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert final.usage is not None
    # the tool turn really reached the prompt: it is longer than the first one
    assert final.usage.prompt_tokens > first.usage.prompt_tokens


def test_the_sdks_parse_helper_with_a_pydantic_model(client: openai.OpenAI) -> None:
    """``chat.completions.parse(response_format=Model)`` sends a strict schema with $defs,
    $ref, enums and anyOf-null, and validates the answer into the model itself."""
    from enum import StrEnum

    from pydantic import BaseModel, Field

    class Line(StrEnum):
        crusher = "crusher"
        screen = "screen"

    class Part(BaseModel):
        name: str = Field(max_length=8)
        qty: int = Field(ge=1, le=9)

    class Incident(BaseModel):
        line: Line
        severity: int = Field(ge=1, le=5)
        note: str | None = Field(max_length=20)
        parts: list[Part] = Field(max_length=2)

    for seed in (1, 2):
        r = client.chat.completions.parse(
            model=APP, messages=ASK, response_format=Incident, max_tokens=300, seed=seed
        )
        incident = r.choices[0].message.parsed
        assert isinstance(incident, Incident) and 1 <= incident.severity <= 5
