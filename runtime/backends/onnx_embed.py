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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.backends import embedding as emb
from runtime.catalog import Variant
from runtime.errors import BackendLoadError, BackendUnavailable, InferenceFailed, InvalidInput

TOKENIZER_FILE = "tokenizer.json"
DEFAULT_MAX_TOKENS = 512


class SentenceEncoder:
    """Tokenize, run, pool, normalise. Thread-safe: the session and tokenizer are."""

    def __init__(self, session: Any, tokenizer: Any, max_tokens: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._inputs = {i.name: i for i in session.get_inputs()}
        out = session.get_outputs()[0]
        self._output = out.name
        self._pooled = len(out.shape or ()) == 2
        ids = list(self._inputs["input_ids"].shape or ())
        self._fixed = ids[1] if len(ids) == 2 and isinstance(ids[1], int) and ids[1] > 0 else 0
        padding = tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))

    @classmethod
    def open(cls, session: Any, variant: Variant) -> SentenceEncoder:
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
        encoder = cls(session, tokenizer, max_tokens)
        if encoder._fixed:
            encoder.max_tokens = min(encoder.max_tokens, encoder._fixed)
        return encoder

    def embed(self, texts: list[str]) -> dict[str, np.ndarray]:
        if not texts:
            return emb.result(np.zeros((0, 0), np.float32), [])
        encodings = self._tokenizer.encode_batch(texts)
        counts = [len(e.ids) for e in encodings]
        for i, n in enumerate(counts):
            if n > self.max_tokens:
                raise InvalidInput(
                    f"input[{i}] is {n} tokens but the model reads at most {self.max_tokens}"
                )
        width = self._fixed or max(max(counts), 1)
        ids = np.full((len(texts), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        feed = {"input_ids": ids}
        if "attention_mask" in self._inputs:
            feed["attention_mask"] = mask
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        try:
            out = np.asarray(self._session.run([self._output], feed)[0], dtype=np.float32)
        except Exception as e:
            raise InferenceFailed(f"onnxruntime failed: {e}") from e
        vectors = out if self._pooled else emb.mean_pool(out, mask)
        return emb.result(vectors, counts)
