"""The embedding limits, the same on every route (KServe v2, OpenAI, MQTT ``embed``), each
named in its 400: texts per request, characters per text, a token budget per request.
A real ONNX sentence encoder on a real server on loopback (and a real Mosquitto)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from runtime.config import Settings
from runtime.loading.loader import VariantLoader
from tests.support.box import box_for
from tests.support.embedding_models import WORDS, write_onnx_encoder_package
from tests.support.http_server import serving
from tests.support.prereq import need_module
from tests.support.synthetic import local_report, make_profile

need_module("tokenizers")

MODEL_TOKENS = 512  # what the test encoder reads per text


def _text(tokens: int, offset: int = 0) -> str:
    return " ".join(WORDS[(offset + i) % len(WORDS)] for i in range(tokens))


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_onnx_encoder_package(tmp_path_factory.mktemp("store"), max_tokens=MODEL_TOKENS)


@pytest.fixture(scope="module")
def url(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("state")
    settings = Settings(paths={"state_dir": state / "s", "cache_dir": state / "c"})  # type: ignore[arg-type]
    loader = VariantLoader(box_for(settings, local_report(), make_profile()))
    with serving([encoder], loader=loader, settings=settings) as handle:
        yield handle.url


def _kserve(url: str, texts: list[str]) -> httpx.Response:
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                        "data": texts}]}  # fmt: skip
    return httpx.post(f"{url}/v2/models/encoder/infer", json=body, timeout=120)


def _openai(url: str, texts: list[str]) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"model": "encoder", "input": texts},
                      timeout=120)  # fmt: skip


def _message(r: httpx.Response) -> str:
    doc = r.json()
    return str(doc["error"]["message"] if isinstance(doc["error"], dict) else doc["error"])


ROUTES: dict[str, Callable[[str, list[str]], httpx.Response]] = {
    "kserve": _kserve, "openai": _openai,
}  # fmt: skip
LIMITS = [
    # (texts, the limit the 400 names)
    (["belt"] * 2049, r"at most 2048 texts.*embeddings\.max_inputs"),
    (["belt " * 13108 + "x"], r"input\[0\].*65536 characters.*embeddings\.max_text_chars"),
    ([_text(400, i) for i in range(200)],
     r"more than 65536 tokens in one request \(embeddings\.max_request_tokens\)"),
]  # fmt: skip


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("texts", "names"), LIMITS, ids=["inputs", "chars", "tokens"])
def test_every_http_route_refuses_past_each_limit_and_names_it(
    url: str, route: str, texts: list[str], names: str
) -> None:
    """Issue 25, item 10: the KServe route took any number of texts (1,000,000 in one
    request: +1.25 GB on a toy model) and neither route had a token budget."""
    r = ROUTES[route](url, texts)
    assert r.status_code == 400, r.text[:300]
    assert re.search(names, _message(r)), _message(r)
    ok = ROUTES[route](url, ["still serving"])
    assert ok.status_code == 200, ok.text


def test_a_million_texts_on_kserve_are_refused_at_once(url: str) -> None:
    """The issue's request: 1,000,000 texts (4 MB of JSON) in one KServe request. Refused
    before any is tokenized, not embedded as one batch."""
    started = time.monotonic()
    r = _kserve(url, ["a"] * 1_000_000)
    assert r.status_code == 400 and "embeddings.max_inputs" in _message(r)
    assert time.monotonic() - started < 30


def test_within_the_limits_a_large_request_is_answered_in_order(url: str) -> None:
    """160 texts of 400 tokens (64,000 tokens: within the budget) run as several batches
    of at most max_batch_tokens; every vector is the one its text gets alone."""
    texts = [_text(400, i) for i in range(160)]
    r = _openai(url, texts)
    assert r.status_code == 200, r.text[:300]
    doc = r.json()
    assert doc["usage"]["prompt_tokens"] == 64_000
    vectors = np.array([d["embedding"] for d in doc["data"]])
    for i in (0, 77, 159):
        alone = np.array(_openai(url, [texts[i]]).json()["data"][0]["embedding"])
        assert np.allclose(vectors[i], alone, atol=1e-5)


def test_the_mqtt_embed_route_has_the_same_limits(
    start_bridge: Callable[..., Any], broker: Any, encoder: Any
) -> None:
    from tests.support.mqtt_client import Requester

    start_bridge([encoder])
    topic = "headframe/mine/n1/models/encoder/embed"
    cases = {b"inputs": (["belt"] * 2049, "embeddings.max_inputs"),
             b"tokens": ([_text(400, i) for i in range(200)], "embeddings.max_request_tokens"),
             b"ok": (["still serving"], None)}  # fmt: skip
    with Requester(broker.host, broker.port) as client:
        for corr, (texts, _) in cases.items():
            client.request(topic, {"input": texts}, correlation=corr)
        assert client.wait_for(lambda r: all(r.by_corr.get(c) for c in cases), timeout=60)
        for corr, (_, named) in cases.items():
            reply = client.replies(corr)[0]
            if named is None:
                assert reply["status"] == "ok", reply
            else:
                assert reply["status"] == "error" and named in reply["error"]["message"], reply
