"""Embedding through the inference service: the builder's batches and the query's one text.

``ServiceEmbedder`` calls ``service.embed(app, texts)`` (the embedding contract of
runtime.backends.embedding), so a pack is built by exactly the model, variant and
worker that will embed queries on the box, in-process, a batch per call. What the
embedder cannot read whole comes back as ``TooLong``; the builder halves such a chunk,
a query gets a clear error naming the limit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from runtime.errors import InvalidInput, ModelNotFound
from runtime.knowledge.identity import EmbedderIdentity

MAX_QUERY_CHARS = 8192  # a question, not a document; refused before any tokenizing
_TOO_LONG = re.compile(r"input\[(\d+)\] is (\d+) tokens but the model reads at most (\d+)")


class EmbedService(Protocol):
    """What embedding needs from runtime.service.InferenceService."""

    def slot(self, app: str) -> Any: ...

    async def embed(self, app: str, texts: Sequence[str], *, protocol: str = "openai") -> Any:
        """An answer (runtime.service.Answer): ``outputs`` and who computed them."""


class TooLong(InvalidInput):
    """Text ``index`` of a batch is ``tokens`` tokens; the embedder reads ``limit``."""

    code = "too_long"

    def __init__(self, message: str, index: int, tokens: int, limit: int) -> None:
        super().__init__(message)
        self.index, self.tokens, self.limit = index, tokens, limit


class ServiceEmbedder:
    """One embedding application of a service, by name."""

    def __init__(self, service: EmbedService, app: str, *, protocol: str = "knowledge") -> None:
        self._service = service
        self.app = app
        self._protocol = protocol
        # (version, variant) that embedded the last call: the service says who answered,
        # so a swap of the embedder between a check and the embedding is seen.
        self.answered: tuple[str, str] | None = None

    def check(self) -> Any:
        """The application's slot; ModelNotFound/NotReady as the service says, InvalidInput
        when it is not an embedding application."""
        slot = self._service.slot(self.app)
        task = slot.package.meta.task
        if task != "embedding":
            raise InvalidInput(
                f"embedder: {self.app!r} is a {task} application, not an embedding one"
            )
        return slot

    async def identity(self) -> EmbedderIdentity:
        """Who embeds now (the served variant) and how wide its vectors are."""
        slot = self.check()
        width = int((await self.embed(["identity"])).shape[1])
        return EmbedderIdentity.of_slot(slot, width)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """[n, dim] unit vectors; TooLong for a text over the model's context."""
        try:
            answer = await self._service.embed(self.app, list(texts), protocol=self._protocol)
        except KeyError as e:  # the service's "never had this app"
            raise ModelNotFound(f"embedder {self.app!r} is not served") from e
        except InvalidInput as e:
            m = _TOO_LONG.search(e.message)
            if m is None:
                raise
            index, tokens, limit = (int(g) for g in m.groups())
            raise TooLong(e.message, index, tokens, limit) from e
        self.answered = (answer.version, answer.variant)
        return np.asarray(answer.outputs["embedding"], dtype=np.float32)

    async def embed_query(self, query: str) -> np.ndarray:
        """One query vector [dim]; InvalidInput naming the limit when it is too long."""
        if not query.strip():
            raise InvalidInput("query: empty")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidInput(f"query: longer than {MAX_QUERY_CHARS} characters")
        try:
            return (await self.embed([query]))[0]
        except TooLong as e:
            raise InvalidInput(
                f"query: {e.tokens} tokens, but the embedder {self.app!r} reads at most "
                f"{e.limit}; shorten the question"
            ) from e
