"""The OpenAI API against a real server on loopback, driven by the openai Python SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.support.prereq import need_module
from tests.support.text_servers import Server

need_module("llama_cpp")  # every test here runs llama.cpp

pytestmark = pytest.mark.slow

APP = "assistant"
CHAT = [{"role": "user", "content": "status check on the conveyor belt"}]


@pytest.fixture(scope="module")
def client(text_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=text_server.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_text_applications_only(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == [APP]
    assert client.models.retrieve(APP).owned_by == "headframe"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("part-id-reader")


def test_chat_completion(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=APP, messages=CHAT, max_tokens=12, seed=5)  # type: ignore[arg-type]
    assert r.object == "chat.completion"
    assert r.model == APP
    assert r.system_fingerprint == "tiny-q8_0"  # the variant the selection chose
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason == "length"
    assert r.usage is not None
    assert r.usage.completion_tokens == 12
    assert r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + 12


def test_completion(client: openai.OpenAI) -> None:
    r = client.completions.create(model=APP, prompt="the pump", max_tokens=7, seed=5)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (3, 7)


def test_same_seed_same_text_and_streaming_matches(client: openai.OpenAI) -> None:
    def once(seed: int) -> str:
        r = client.completions.create(model=APP, prompt="alarm", max_tokens=16, seed=seed)
        return r.choices[0].text

    a, b, c = once(11), once(11), once(12)
    assert a == b
    assert a != c
    stream = client.completions.create(
        model=APP, prompt="alarm", max_tokens=16, seed=11, stream=True
    )
    assert "".join(ch.choices[0].text for ch in stream if ch.choices) == a


def test_chat_stream_sends_a_chunk_per_token_then_finish_and_usage(
    client: openai.OpenAI,
) -> None:
    reference = client.chat.completions.create(model=APP, messages=CHAT, max_tokens=20, seed=3)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model=APP, messages=CHAT, max_tokens=20, seed=3, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks[1:] if c.choices]
    content = [t for t in content if t]
    assert len(content) == 20  # one event per generated token
    assert "".join(content) == reference.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "length"
    assert all(f is None for f in finish[:-1])
    # include_usage: a last chunk with no choices carries the usage
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 20
    assert all(c.usage is None for c in chunks[:-1])


def test_stop_sequence(client: openai.OpenAI) -> None:
    full = client.completions.create(model=APP, prompt="valve", max_tokens=24, seed=9)
    text = full.choices[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut = client.completions.create(model=APP, prompt="valve", max_tokens=24, seed=9, stop=[stop])
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(
        model=APP, prompt="valve", max_tokens=24, seed=9, stop=stop, stream=True
    )
    parts = [(c.choices[0].text, c.choices[0].finish_reason) for c in streamed]
    assert "".join(t for t, _ in parts) == cut.choices[0].text
    assert parts[-1][1] == "stop"


def _error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_unknown_model_is_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=CHAT, max_tokens=2)  # type: ignore[arg-type]
    err = _error(e.value)
    assert err["code"] == "model_not_found"
    assert "nope" in err["message"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 3.5}, "temperature"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_p": 0}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"logprobs": True}, "logprobs"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=APP, messages=CHAT, **kwargs)  # type: ignore[arg-type]
    err = _error(e.value)
    assert err["type"] == "invalid_request_error"
    assert err["message"].startswith(param)


def test_malformed_bodies_and_wrong_kinds_of_model(text_server: Server) -> None:
    url = text_server.url + "/v1/chat/completions"
    cases = [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (json.dumps({"model": APP}).encode(), 400),  # no messages
        (
            json.dumps({"model": APP, "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            400,
        ),
        (json.dumps({"model": "part-id-reader", "messages": CHAT}).encode(), 400),
        (json.dumps({"model": "broken", "messages": CHAT}).encode(), 503),
    ]
    for body, status in cases:
        r = httpx.post(url, content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, (body, r.text)
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        if status == 503:
            assert int(r.headers["retry-after"]) >= 1
    # the server still serves after all that
    ok = httpx.post(url, json={"model": APP, "messages": CHAT, "max_tokens": 2})
    assert ok.status_code == 200


def test_prompt_longer_than_the_context_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=APP, prompt="the pump " * 1200, max_tokens=2)
    assert "context" in _error(e.value)["message"]


def test_tokens_reach_the_client_before_generation_ends(text_server: Server) -> None:
    """Read the first token event, hang up, and check in llama.cpp's own state that the
    model stopped far short of max_tokens: the first chunk left before generation ended."""
    max_tokens = 1900
    body = {"model": APP, "prompt": "the", "max_tokens": max_tokens, "stream": True, "seed": 1}
    with httpx.stream("POST", text_server.url + "/v1/completions", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["text"]:
                break
    slot = text_server.service.slot(APP)
    for _ in range(400):  # the worker frees itself once the backend thread has stopped
        if slot.worker.depth == 0:
            break
        time.sleep(0.05)
    llm = slot.loaded.backend._llm
    generated = llm.n_tokens - 2  # minus BOS and "▁the"
    assert 0 < generated < max_tokens // 2


def test_concurrent_streams_each_get_their_own_text(client: openai.OpenAI) -> None:
    """Requests to one model queue on its worker; none sees another's tokens."""
    from concurrent.futures import ThreadPoolExecutor

    def streamed(seed: int) -> str:
        chunks = client.completions.create(
            model=APP, prompt="motor", max_tokens=30, seed=seed, stream=True
        )
        return "".join(c.choices[0].text for c in chunks if c.choices)

    def plain(seed: int) -> str:
        r = client.completions.create(model=APP, prompt="motor", max_tokens=30, seed=seed)
        return r.choices[0].text

    expected = [plain(s) for s in (21, 22, 23, 24)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(streamed, (21, 22, 23, 24)))
    assert got == expected


def test_the_selection_chose_the_smallest_gguf_and_metrics_count_tokens(
    client: openai.OpenAI, text_server: Server
) -> None:
    slot = text_server.service.slot(APP)
    assert slot.variant.id == "tiny-q8_0"
    assert [(a.backend, a.device, a.ok) for a in slot.attempts] == [("llama", "cpu", True)]
    assert slot.backend_info.backend == "llama"

    def tokens() -> float:
        text = httpx.get(text_server.url + "/metrics").text
        for line in text.splitlines():
            if line.startswith("headframe_tokens_generated_total{") and f'app="{APP}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = tokens()
    client.completions.create(model=APP, prompt="ok", max_tokens=5, seed=1)
    assert tokens() == before + 5
