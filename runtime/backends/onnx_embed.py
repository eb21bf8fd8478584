"""An ONNX sentence encoder and its tokenizer: the onnx backend's embedding path.

A variant of an embedding package (``task = "embedding"``) in ONNX format ships
``tokenizer.json`` beside its model, the Hugging Face ``tokenizers`` file that every
sentence-transformers export carries. ``tokenizers`` is the maintained library that reads
it natively (Rust, batch encoding, no torch or transformers), so the exact tokenizer the
encoder was trained with runs on the box.

The model takes ``input_ids`` (and ``attention_mask``/``token_type_ids`` when it declares
them), INT64 [batch, tokens]; its first output is either per-token vectors [batch,
tokens, dim], mean-pooled over the attention mask, or already pooled [batch, dim].
A text longer than the model reads is refused (InvalidInput), never cut silently.

Within ``[embeddings]`` (runtime.backends.embedding): texts are tokenized a slice at a
time (``TOKENIZE_CHARS``) against the request's token budget, keeping only the ids, and
run in batches of at most ``max_batch_tokens`` padded tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.backends import embedding as emb
from runtime.catalog import Variant
from runtime.config import EmbeddingSettings
from runtime.errors import BackendLoadError, BackendUnavailable, InferenceFailed

TOKENIZER_FILE = "tokenizer.json"
DEFAULT_MAX_TOKENS = 512
TOKENIZE_CHARS = 256 * 1024  # texts tokenized per slice: a request over budget stops early


class SentenceEncoder:
    """Tokenize, run, pool, normalise. Thread-safe: the session and tokenizer are."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        max_tokens: int,
        limits: EmbeddingSettings | None = None,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.limits = limits or EmbeddingSettings()
        self._inputs = {i.name: i for i in session.get_inputs()}
        out = session.get_outputs()[0]
        self._output = out.name
        self._pooled = len(out.shape or ()) == 2
        ids = list(self._inputs["input_ids"].shape or ())
        self._fixed = ids[1] if len(ids) == 2 and isinstance(ids[1], int) and ids[1] > 0 else 0
        padding = tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))

    @classmethod
    def open(
        cls, session: Any, variant: Variant, limits: EmbeddingSettings | None = None
    ) -> SentenceEncoder:
        path = variant.entrypoint.parent / TOKENIZER_FILE
        if not any(f.path.endswith(TOKENIZER_FILE) for f in variant.meta.files):
            raise BackendLoadError(
                f"{variant.path}: an ONNX embedding variant ships {TOKENIZER_FILE} in its files"
            )
        try:
            from tokenizers import Tokenizer
        except ImportError as e:
            raise BackendUnavailable(
                f"tokenizers is not installed (pip install 'headframe[embed]'): {e}"
            ) from e
        names = {i.name for i in session.get_inputs()}
        if "input_ids" not in names:
            raise BackendLoadError(
                f"{variant.entrypoint}: a sentence encoder takes input_ids (it has {sorted(names)})"
            )
        if len(session.get_outputs()[0].shape or ()) not in (2, 3):
            raise BackendLoadError(
                f"{variant.entrypoint}: the first output is neither [batch, tokens, dim] "
                "nor [batch, dim]"
            )
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:
            raise BackendLoadError(f"{path}: tokenizers cannot read it: {e}") from e
        truncation = tokenizer.truncation or {}
        max_tokens = int(truncation.get("max_length") or DEFAULT_MAX_TOKENS)
        tokenizer.no_truncation()
        tokenizer.no_padding()
        encoder = cls(session, tokenizer, max_tokens, limits)
        if encoder._fixed:
            encoder.max_tokens = min(encoder.max_tokens, encoder._fixed)
        return encoder

    def embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        if not texts:
            return emb.result(np.zeros((0, 0), np.float32), [])
        ids = self._tokenize(texts)
        counts = [len(x) for x in ids]
        vectors: np.ndarray | None = None
        for batch in emb.token_batches(counts, self.limits.max_batch_tokens, self._fixed):
            out = self._run([ids[i] for i in batch])
            if vectors is None:
                vectors = np.empty((len(texts), out.shape[1]), np.float32)
            vectors[batch] = out
        assert vectors is not None
        return emb.result(vectors, counts)

    def _tokenize(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's token ids, a slice of texts at a time: the budget is checked as the
        counts come, and only the ids are kept (a tokenizers Encoding holds far more)."""
        budget = emb.TokenBudget(self.limits, self.max_tokens)
        ids: list[np.ndarray] = []
        start = 0
        while start < len(texts):
            end, chars = start + 1, len(texts[start])
            while end < len(texts) and chars + len(texts[end]) <= TOKENIZE_CHARS:
                chars += len(texts[end])
                end += 1
            for i, e in enumerate(self._tokenizer.encode_batch(texts[start:end]), start):
                budget.take(i, len(e.ids))
                ids.append(np.asarray(e.ids, dtype=np.int64))
            start = end
        return ids

    def _run(self, rows: list[np.ndarray]) -> np.ndarray:
        """One batch through the model: [len(rows), dim] pooled vectors."""
        width = self._fixed or max(max(len(r) for r in rows), 1)
        ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for row, r in enumerate(rows):
            ids[row, : len(r)] = r
            mask[row, : len(r)] = 1
        feed = {"input_ids": ids}
        if "attention_mask" in self._inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        try:
            out = np.asarray(self._session.run([self._output], feed)[0], dtype=np.float32)
        except Exception as e:
            raise InferenceFailed(f"onnxruntime failed: {e}") from e
        return out if self._pooled else emb.mean_pool(out, mask)
