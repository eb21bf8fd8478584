"""OpenAI embeddings, shared by HTTP (``POST /v1/embeddings``) and MQTT (``.../embed``).

``input`` is a string or a list of non-empty strings (token arrays are refused: the box
tokenizes with the model's own tokenizer). The texts go to the application's worker as
one ``embed`` call of the service (runtime.backends.embedding's contract), where the limits of
``[embeddings]`` apply as on every other route (texts per request, characters per text,
the request's token budget; each 400 names its setting) and the backend runs them in
batches of at most ``max_batch_tokens``.

``encoding_format`` "float" gives lists of numbers; "base64" the little-endian float32
bytes, base64-encoded (what the openai SDK asks for by default and decodes itself).
``dimensions`` keeps the first N dimensions, re-normalised, only for packages that say
``embedding_truncation = true`` (Matryoshka-trained models); otherwise it must equal the
model's own width. Vectors are L2-normalised.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.backends.embedding import l2_normalise
from runtime.codecs.openai import validation_message
from runtime.errors import InvalidInput


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=65536)
    user: str | None = None

    def texts(self) -> list[str]:
        items = [self.input] if isinstance(self.input, str) else list(self.input)
        if not items:
            raise InvalidInput("input: send at least one text")
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise InvalidInput("input: token arrays are not supported; send text")
            if not t:
                raise InvalidInput(f"input[{i}]: empty text")
        return items  # type: ignore[return-value]


def parse_embedding(body: bytes | str | Mapping[str, Any]) -> EmbeddingRequest:
    """Validate an embeddings body (JSON text or a decoded object); InvalidInput names the field."""
    try:
        if isinstance(body, bytes | str):
            return EmbeddingRequest.model_validate_json(body)
        return EmbeddingRequest.model_validate(body)
    except ValidationError as e:
        raise InvalidInput(validation_message(e)) from e


class EmbedService(Protocol):
    """What embedding needs from runtime.service.InferenceService."""

    async def embed(self, app: str, texts: Sequence[str], *, protocol: str = "openai") -> Any:
        """An answer (runtime.service.Answer): ``outputs`` (``embedding``, ``tokens``), the
        package ``meta`` that computed them, ``version``, ``variant``, ``reload_ms``."""
        ...


async def embed(
    service: EmbedService, request: EmbeddingRequest, protocol: str
) -> tuple[dict[str, Any], Any]:
    """Run one embeddings request on the application's worker: the OpenAI ``list`` object,
    and the service's answer (who computed it, whether it waited for a reload)."""
    texts = request.texts()
    answer = await service.embed(request.model, texts, protocol=protocol)
    out = answer.outputs
    vectors = np.asarray(out["embedding"], dtype=np.float32)
    tokens = int(np.asarray(out["tokens"]).sum())
    truncatable = bool(answer.meta.embedding_truncation)
    return response(request, vectors, tokens, truncatable), answer


def response(
    request: EmbeddingRequest, vectors: np.ndarray, tokens: int, truncatable: bool
) -> dict[str, Any]:
    width = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    if request.dimensions is not None and request.dimensions != width:
        if not truncatable:
            raise InvalidInput(
                f"dimensions: this model gives {width} dimensions and does not allow truncation"
            )
        if request.dimensions > width:
            raise InvalidInput(f"dimensions: at most {width} for this model")
        vectors = l2_normalise(vectors[:, : request.dimensions])
    data = []
    for i, v in enumerate(vectors):
        value: Any
        if request.encoding_format == "base64":
            value = base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
        else:
            value = v.astype(np.float32).tolist()
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
