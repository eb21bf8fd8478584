"""What every embedding backend shares: the tensor contract, pooling and normalisation.

An application whose package says ``task = "embedding"`` answers ``infer`` with
``{"text": BYTES [n]} -> {"embedding": FP32 [n, dim], "tokens": INT64 [n]}``: one vector
per text and the number of tokens the model read for it. Every axis 0 is the batch, so
the model's worker may micro-batch requests. Vectors are mean-pooled over the text's
tokens when the model returns one vector per token, then L2-normalised (unit length, so
a dot product is the cosine similarity), whatever the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from runtime.backends.base import IOSchema
from runtime.catalog import TensorSpec
from runtime.errors import InvalidInput

EMBEDDING_SCHEMA = IOSchema(
    inputs=(TensorSpec(name="text", datatype="BYTES", shape=(-1,)),),
    outputs=(
        TensorSpec(name="embedding", datatype="FP32", shape=(-1, -1)),
        TensorSpec(name="tokens", datatype="INT64", shape=(-1,)),
    ),
)


def texts_of(inputs: Mapping[str, np.ndarray]) -> list[str]:
    """The batch of texts from an ``infer`` call (UTF-8 bytes or str per row)."""
    rows = np.asarray(inputs["text"]).reshape(-1)
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, bytes):
            try:
                r = r.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidInput(f"input[{i}]: not valid UTF-8: {e}") from e
        out.append(str(r))
    return out


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
