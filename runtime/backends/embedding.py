"""What every embedding backend shares: the tensor contract, pooling and normalisation.

An application whose package says ``task = "embedding"`` answers ``infer`` with
``{"text": BYTES [n]} -> {"embedding": FP32 [n, dim], "tokens": INT64 [n]}``: one vector
per text and the number of tokens the model read for it. Every axis 0 is the batch, so
the model's worker may micro-batch requests. Vectors are mean-pooled over the text's
tokens when the model returns one vector per token, then L2-normalised (unit length, so
a dot product is the cosine similarity), whatever the runtime.

The limits of a request (``[embeddings]``, runtime.config.EmbeddingSettings) are enforced
here, where the texts are read and tokenized, so every route (KServe v2, OpenAI, MQTT,
a stream binding) meets the same ones: ``texts_of`` checks the count before reading any
text and each text's length, ``TokenBudget`` the tokens of the whole request as the
tokenizer counts them (a request over it is refused without tokenizing the rest), and
``token_batches`` splits the texts into batches of at most ``max_batch_tokens`` padded
tokens. Each refusal names its setting. With micro-batching, the worker may hand several
requests to one call; a call over a limit is then retried one request at a time
(runtime.service.worker), so each request is judged on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from runtime.backends.base import IOSchema
from runtime.catalog import TensorSpec
from runtime.config import EmbeddingSettings
from runtime.errors import InvalidInput

EMBEDDING_SCHEMA = IOSchema(
    inputs=(TensorSpec(name="text", datatype="BYTES", shape=(-1,)),),
    outputs=(
        TensorSpec(name="embedding", datatype="FP32", shape=(-1, -1)),
        TensorSpec(name="tokens", datatype="INT64", shape=(-1,)),
    ),
)


def texts_of(
    inputs: Mapping[str, np.ndarray], limits: EmbeddingSettings | None = None
) -> list[str]:
    """The batch of texts from an ``infer`` call (UTF-8 bytes or str per row), within
    ``limits``: the count is checked before any text is read."""
    limits = limits or EmbeddingSettings()
    rows = np.asarray(inputs["text"]).reshape(-1)
    if rows.size > limits.max_inputs:
        raise InvalidInput(
            f"input: at most {limits.max_inputs} texts per request, not {rows.size} "
            "(embeddings.max_inputs)"
        )
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, bytes):
            try:
                r = r.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidInput(f"input[{i}]: not valid UTF-8: {e}") from e
        text = str(r)
        if len(text) > limits.max_text_chars:
            raise InvalidInput(
                f"input[{i}]: longer than {limits.max_text_chars} characters "
                "(embeddings.max_text_chars)"
            )
        out.append(text)
    return out


class TokenBudget:
    """The tokens of one request, counted as the tokenizer goes: ``take`` raises once they
    pass ``embeddings.max_request_tokens`` (so the rest is never tokenized) or a text
    passes what the model reads."""

    def __init__(self, limits: EmbeddingSettings, model_tokens: int) -> None:
        self.limit, self.model_tokens = limits.max_request_tokens, model_tokens
        self.total = 0

    def take(self, i: int, n: int) -> None:
        if n > self.model_tokens:
            raise InvalidInput(
                f"input[{i}] is {n} tokens but the model reads at most {self.model_tokens}"
            )
        self.total += n
        if self.total > self.limit:
            raise InvalidInput(
                f"input: more than {self.limit} tokens in one request "
                f"(embeddings.max_request_tokens): input[0..{i}] hold {self.total}"
            )


def token_batches(counts: Sequence[int], max_tokens: int, width: int = 0) -> list[list[int]]:
    """The texts' indices in batches of at most ``max_tokens`` padded tokens: sorted by
    length (so a batch pads little), each batch padded to its longest text, or to
    ``width`` for a model with a fixed input length. A text longer than ``max_tokens``
    runs alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in sorted(range(len(counts)), key=lambda k: counts[k]):
        padded = width or max(longest, counts[i], 1)
        if current and (len(current) + 1) * padded > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, counts[i])
    if current:
        batches.append(current)
    return batches


def mean_pool(vectors: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """[n, tokens, dim] (or one [tokens, dim]) -> [n, dim], averaging unmasked tokens."""
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim == 2:
        return v.mean(axis=0, keepdims=True)
    if mask is None:
        return v.mean(axis=1)
    m = np.asarray(mask, dtype=np.float32)[..., None]
    return (v * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)


def l2_normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)


def result(vectors: np.ndarray, tokens: Sequence[int]) -> dict[str, np.ndarray]:
    return {
        "embedding": l2_normalise(vectors).astype(np.float32),
        "tokens": np.asarray(tokens, dtype=np.int64).reshape(-1),
    }
