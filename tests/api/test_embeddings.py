"""POST /v1/embeddings through the openai SDK: a GGUF in llama.cpp's embedding mode and an
ONNX sentence encoder with its tokenizer, on a real server on loopback."""

from __future__ import annotations

import concurrent.futures
import re

import httpx
import numpy as np
import openai
import pytest

from tests.support.prereq import need_module
from tests.support.text_servers import Server

need_module("llama_cpp")  # every test here runs llama.cpp

pytestmark = pytest.mark.slow

TEXTS = ["conveyor belt fault", "pump pressure high", "replace the bearing weekly"]
MODELS = ["gguf-embedder", "encoder"]


@pytest.fixture(scope="module")
def client(agent_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=agent_server.url + "/v1", api_key="unused", max_retries=0)


def _vectors(client: openai.OpenAI, model: str, texts: list[str] | str, **kw: object) -> np.ndarray:
    r = client.embeddings.create(model=model, input=texts, **kw)  # type: ignore[arg-type]
    assert [d.index for d in r.data] == list(range(len(r.data)))
    return np.array([d.embedding for d in r.data], dtype=np.float32)


@pytest.mark.parametrize("model", MODELS)
def test_shapes_usage_and_unit_length(client: openai.OpenAI, model: str) -> None:
    r = client.embeddings.create(model=model, input=TEXTS, encoding_format="float")
    assert r.object == "list" and r.model == model
    v = np.array([d.embedding for d in r.data])
    assert v.shape[0] == len(TEXTS) and v.shape[1] > 1
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert r.usage.prompt_tokens == r.usage.total_tokens >= len(TEXTS) * 3
    # different texts, different vectors
    assert not np.allclose(v[0], v[1])


@pytest.mark.parametrize("model", MODELS)
def test_deterministic_base64_equals_float_batch_equals_singles(
    client: openai.OpenAI, model: str
) -> None:
    floats = _vectors(client, model, TEXTS, encoding_format="float")
    # The SDK asks for base64 by default and decodes it itself.
    b64 = _vectors(client, model, TEXTS)
    assert np.array_equal(floats, b64)
    again = _vectors(client, model, TEXTS, encoding_format="float")
    assert np.array_equal(floats, again)
    singles = np.concatenate([_vectors(client, model, t, encoding_format="float") for t in TEXTS])
    assert np.allclose(floats, singles, atol=1e-5)


def test_concurrent_requests_are_batched_and_unchanged(client: openai.OpenAI) -> None:
    """Requests arriving together share one worker batch; each still gets its own vectors."""
    alone = [_vectors(client, "encoder", t, encoding_format="float") for t in TEXTS]
    with concurrent.futures.ThreadPoolExecutor(len(TEXTS)) as pool:
        together = list(
            pool.map(lambda t: _vectors(client, "encoder", t, encoding_format="float"), TEXTS)
        )
    for a, b in zip(alone, together, strict=True):
        assert np.allclose(a, b, atol=1e-6)


def test_dimensions_truncate_only_when_the_package_allows(client: openai.OpenAI) -> None:
    full = _vectors(client, "encoder", TEXTS[0], encoding_format="float")
    cut = _vectors(client, "encoder", TEXTS[0], encoding_format="float", dimensions=8)
    assert cut.shape == (1, 8)
    assert np.allclose(cut[0], full[0, :8] / np.linalg.norm(full[0, :8]), atol=1e-6)
    with pytest.raises(openai.BadRequestError, match="does not allow truncation"):
        client.embeddings.create(model="gguf-embedder", input="x", dimensions=8)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "encoder", "input": []}, "at least one text"),
        ({"model": "encoder", "input": ["ok"] * 2049}, "at most 2048"),
        ({"model": "encoder", "input": [""]}, r"input\[0\]: empty"),
        ({"model": "encoder", "input": [[1, 2, 3]]}, "token arrays"),
        ({"model": "encoder", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "encoder", "input": " ".join(["belt"] * 40)}, "model reads at most 32"),
        ({"model": "assistant", "input": "x"}, "not an embedding"),
    ],
)
def test_bad_input_is_a_400_and_the_worker_keeps_serving(
    agent_server: Server, client: openai.OpenAI, body: dict[str, object], message: str
) -> None:
    r = httpx.post(agent_server.url + "/v1/embeddings", json=body, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert re.search(message, err["message"]), err["message"]
    assert _vectors(client, "encoder", "still serving").shape[0] == 1


def test_text_longer_than_the_gguf_context_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="model reads at most"):
        client.embeddings.create(model="gguf-embedder", input="belt " * 5000)
    assert _vectors(client, "gguf-embedder", "still serving").shape[0] == 1


def test_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nope", input="x")


def test_models_list_names_the_embedding_applications(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"assistant", "gguf-embedder", "encoder"}


def test_a_bad_text_in_a_micro_batch_fails_only_its_own_request(client: openai.OpenAI) -> None:
    too_long = " ".join(["belt"] * 40)
    bodies = ["belt fault", too_long, "pump high", too_long, "valve ok"]

    def one(text: str) -> object:
        try:
            return _vectors(client, "encoder", text, encoding_format="float")
        except openai.BadRequestError as e:
            return e

    for _ in range(3):  # arriving together, they share batches on the worker
        with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
            results = list(pool.map(one, bodies))
        for text, res in zip(bodies, results, strict=True):
            if text == too_long:
                assert isinstance(res, openai.BadRequestError)
            else:
                assert isinstance(res, np.ndarray) and res.shape[0] == 1
