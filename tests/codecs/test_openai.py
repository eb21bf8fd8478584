"""The OpenAI codec: what MQTT chat and HTTP both decode and encode."""

from __future__ import annotations

import json

import orjson
import pytest

from runtime.api.openai import error_response
from runtime.backends.base import GenerationChunk
from runtime.codecs.openai import StreamEncoder, error_for, parse_chat, parse_completion
from runtime.errors import Busy, InferenceFailed, InvalidInput, ModelNotFound, NotReady


def test_chat_body_becomes_a_generation_request() -> None:
    req = parse_chat(
        b'{"model": "a", "messages": [{"role": "developer", "content": "be brief"},'
        b'{"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text",'
        b' "text": "there"}]}], "max_completion_tokens": 9, "stop": "\\n", "seed": -1,'
        b' "temperature": 0, "stream": true, "stream_options": {"include_usage": true},'
        b' "user": "ignored", "some_future_field": 1}'
    )
    gen = req.to_generation()
    assert gen.messages == (
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi there"},
    )
    assert (gen.max_tokens, gen.stop, gen.temperature) == (9, ("\n",), 0.0)
    assert gen.seed == 2**32 - 1  # any integer seed is accepted, folded to 32 bits
    assert req.include_usage


def test_completion_defaults_and_single_prompt_list() -> None:
    gen = parse_completion({"model": "a", "prompt": ["once"]}).to_generation()
    assert gen.prompt == "once"
    assert (gen.max_tokens, gen.temperature, gen.top_p, gen.stop, gen.seed) == (
        128, 0.8, 0.95, (), None,
    )  # fmt: skip
    assert not parse_completion({"model": "a", "prompt": "x", "stream": False}).include_usage


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "a", "prompt": ["one", "two"]}, "prompt: send one prompt"),
        ({"model": "a", "prompt": "x", "echo": True}, "echo"),
        ({"model": "a", "prompt": "x", "n": 3}, "n: "),
        ({"model": "a", "prompt": "x", "logprobs": 2}, "logprobs"),
        ({"model": "a"}, "prompt: Field required"),
        ({"prompt": "x"}, "model: Field required"),
    ],
)
def test_bad_completion_bodies_name_the_field(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_completion(body).to_generation()


def test_image_parts_and_tools_are_refused() -> None:
    img = {"model": "a", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}
    with pytest.raises(InvalidInput, match=r"messages\[0\].content"):
        parse_chat(img).to_generation()
    tools = {"model": "a", "messages": [{"role": "user", "content": "x"}], "tools": [{}]}
    with pytest.raises(InvalidInput, match="tools"):
        parse_chat(tools).to_generation()


def _chunks() -> list[GenerationChunk]:
    return [
        GenerationChunk("Hel", None, 5, 1),
        GenerationChunk("lo", None, 5, 2),
        GenerationChunk("", "stop", 5, 3),
    ]


def test_chat_stream_encoding() -> None:
    enc = StreamEncoder("chat", "a", include_usage=True, fingerprint="v1")
    objs = enc.start() + [o for c in _chunks() for o in enc.encode(c)]
    assert [o["object"] for o in objs] == ["chat.completion.chunk"] * 5
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [o["choices"][0]["delta"].get("content") for o in objs[1:3]] == ["Hel", "lo"]
    assert objs[3]["choices"][0] == {
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop",
    }  # fmt: skip
    assert objs[4]["choices"] == []
    assert objs[4]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert all(o["usage"] is None for o in objs[:4])
    assert {o["id"] for o in objs} == {enc.id} and enc.id.startswith("chatcmpl-")


def test_non_streaming_responses() -> None:
    chat = StreamEncoder("chat", "a").response(_chunks())
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert chat["usage"]["total_tokens"] == 8
    text = StreamEncoder("text", "a").response(_chunks())
    assert (text["object"], text["choices"][0]["text"]) == ("text_completion", "Hello")
    assert "usage" not in StreamEncoder("text", "a").encode(_chunks()[0])[0]


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (InvalidInput("temperature: too hot"), 400, "invalid_request_error"),
        (ModelNotFound("no such model"), 404, "invalid_request_error"),
        (Busy("queue full", retry_after_s=2.0), 429, "rate_limit_error"),
        (NotReady("loading", retry_after_s=0.2), 503, "service_unavailable"),
        (InferenceFailed("boom"), 500, "server_error"),
    ],
)
def test_errors_map_to_status_and_openai_shape(exc: Exception, status: int, type_: str) -> None:
    resp = error_response(exc)  # type: ignore[arg-type]
    assert resp.status_code == status
    body = orjson.loads(resp.body)
    assert body == error_for(exc)  # type: ignore[arg-type]
    assert body["error"]["type"] == type_
    assert body["error"]["message"] == str(exc)
    if status in (429, 503):
        assert int(resp.headers["retry-after"]) >= 1
    if status == 400:
        assert body["error"]["param"] == "temperature"


def _tool_plan(choice: object = "auto") -> object:
    from runtime.structured.tool_calls import plan

    params = {"type": "object", "properties": {"line": {"type": "string"}}, "required": ["line"]}
    tool = {"type": "function", "function": {"name": "stop_line", "parameters": params}}
    return plan([tool], choice)


def test_auto_streams_text_at_once_and_holds_a_call_until_it_is_whole() -> None:
    text = StreamEncoder("chat", "a", tools=_tool_plan())  # type: ignore[arg-type]
    out = text.encode(GenerationChunk("Belt ", None, 3, 1))
    assert out[0]["choices"][0]["delta"] == {"content": "Belt "}  # not held back
    call = StreamEncoder("chat", "a", tools=_tool_plan())  # type: ignore[arg-type]
    pieces = ['{"name":"stop_', 'line","arguments":', '{"line":"3"}}']
    held = [call.encode(GenerationChunk(p, None, 3, i)) for i, p in enumerate(pieces)]
    assert held == [[], [], []]
    *_, delta, finish = call.encode(GenerationChunk("", "stop", 3, 4))
    tc = delta["choices"][0]["delta"]["tool_calls"][0]
    assert (tc["index"], tc["type"], tc["function"]["name"]) == (0, "function", "stop_line")
    assert json.loads(tc["function"]["arguments"]) == {"line": "3"}
    assert finish["choices"][0]["finish_reason"] == "tool_calls"


def test_a_call_cut_by_max_tokens_comes_back_as_text() -> None:
    enc = StreamEncoder("chat", "a", tools=_tool_plan("required"))  # type: ignore[arg-type]
    assert enc.encode(GenerationChunk('{"name":"stop_line","argu', None, 3, 1)) == []
    *_, text, finish = enc.encode(GenerationChunk("", "length", 3, 2))
    assert text["choices"][0]["delta"]["content"] == '{"name":"stop_line","argu'
    assert finish["choices"][0]["finish_reason"] == "length"
    body = StreamEncoder("chat", "a", tools=_tool_plan("required"))  # type: ignore[arg-type]
    whole = body.response([GenerationChunk('{"name":"stop_line","arguments":{"line":""}}', "stop")])
    assert whole["choices"][0]["message"]["content"] is None
    assert whole["choices"][0]["finish_reason"] == "tool_calls"


def test_auto_takes_a_call_wrapped_in_tool_call_tags_and_forwards_other_markup() -> None:
    enc = StreamEncoder("chat", "a", tools=_tool_plan())  # type: ignore[arg-type]
    pieces = ["<tool", '_call>\n{"name":"stop_line",', '"arguments":{"line":"2"}}\n</tool_call>']
    assert [enc.encode(GenerationChunk(p, None, 3, i)) for i, p in enumerate(pieces)] == [[]] * 3
    *_, delta, finish = enc.encode(GenerationChunk("", "stop", 3, 4))
    call = delta["choices"][0]["delta"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"line": "2"}
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    html = StreamEncoder("chat", "a", tools=_tool_plan())  # type: ignore[arg-type]
    assert html.encode(GenerationChunk("<b>belt", None, 3, 1))[0]["choices"][0]["delta"] == {
        "content": "<b>belt"
    }
