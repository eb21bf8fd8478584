"""``[embeddings]``: the limits of an embeddings request, the same on every route (KServe
v2, ``POST /v1/embeddings``, MQTT ``embed``), enforced where the texts are tokenized
(runtime.backends.embedding and the embedding backends), each named in its 400.

``max_batch_tokens`` is not a refusal but how a request is run: its texts go to the model
in batches of at most that many padded tokens (as TEI's ``max_batch_tokens``), so one
large request costs the memory of one such batch, not of all its texts at once.
"""

from __future__ import annotations

from pydantic import Field

from runtime.config.base import Section


class EmbeddingSettings(Section):
    max_inputs: int = Field(
        default=2048, ge=1, le=100_000, title="Texts per embeddings request (every route)"
    )
    max_text_chars: int = Field(
        default=64 * 1024, ge=1, le=16 * 1024 * 1024, title="Characters per text"
    )
    max_request_tokens: int = Field(
        default=65_536,
        ge=1,
        le=16 * 1024 * 1024,
        title="Token budget of one request (all its texts together)",
        description="a request whose texts hold more tokens is refused once the tokenizer "
        "has counted past it",
    )
    max_batch_tokens: int = Field(
        default=16_384,
        ge=1,
        le=16 * 1024 * 1024,
        title="Padded tokens the model runs at once",
        description="a request's texts are sorted by length and run in batches of at most "
        "this many tokens, each padded to its own longest text (one text longer than this "
        "runs alone)",
    )
