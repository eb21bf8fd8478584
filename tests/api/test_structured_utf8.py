"""Structured output from a vocabulary whose byte-fallback tokens are sampled (issue 25,
item 3), through the openai SDK against a real server: ``chat.completions.parse`` with a
pydantic model, a schema streamed and not, and tool-call arguments. Every completed
answer validates; before the fix, strings held U+FFFD runs past their maxLength."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.support.prereq import need_module
from tests.support.text_servers import Server

need_module("llama_cpp")

pytestmark = pytest.mark.slow

APP = "bytes-assistant"
ASK = [{"role": "user", "content": "report the conveyor status"}]
SHORT = {
    "type": "object",
    "properties": {"code": {"type": "string", "maxLength": 12}, "ok": {"type": "boolean"}},
    "required": ["code", "ok"],
    "additionalProperties": False,
}
TAG = {
    "type": "function",
    "function": {
        "name": "tag_part",
        "parameters": {
            "type": "object",
            "properties": {"label": {"type": "string", "maxLength": 10}},
            "required": ["label"],
        },
    },
}


class Reading(BaseModel):
    sensor: str = Field(max_length=12)
    note: str | None = Field(max_length=8)


@pytest.fixture(scope="module")
def client(bytes_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=bytes_server.url + "/v1", api_key="unused", max_retries=0)


def test_parse_with_a_pydantic_model_always_validates(client: openai.OpenAI) -> None:
    for seed in range(12):
        r = client.chat.completions.parse(
            model=APP, messages=ASK, response_format=Reading, max_tokens=300, seed=seed,
            temperature=1.0,
        )  # fmt: skip
        assert r.choices[0].finish_reason == "stop"
        parsed = r.choices[0].message.parsed
        assert isinstance(parsed, Reading), r.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_validates_streamed_and_not(client: openai.OpenAI, stream: bool) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "short", "schema": SHORT}}
    for seed in range(12):
        kw: dict[str, Any] = {"model": APP, "messages": ASK, "max_tokens": 300, "seed": seed,
                              "temperature": 1.0, "response_format": fmt}  # fmt: skip
        if stream:
            chunks = [c for c in client.chat.completions.create(stream=True, **kw) if c.choices]
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            assert chunks[-1].choices[0].finish_reason == "stop"
        else:
            r = client.chat.completions.create(**kw)
            text = r.choices[0].message.content or ""
            assert r.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(text), SHORT)


def test_tool_call_arguments_always_validate(client: openai.OpenAI) -> None:
    choice = {"type": "function", "function": {"name": "tag_part"}}
    for seed in range(12):
        r = client.chat.completions.create(
            model=APP, messages=ASK, tools=[TAG], tool_choice=choice, max_tokens=300,
            seed=seed, temperature=1.0,
        )  # fmt: skip
        call = r.choices[0].message.tool_calls[0]
        jsonschema.validate(json.loads(call.function.arguments), TAG["function"]["parameters"])
