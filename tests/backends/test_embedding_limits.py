"""The embedding backends under the limits of [embeddings] (runtime.backends.embedding):
a request is split into batches of at most ``max_batch_tokens`` padded tokens (as TEI's
max_batch_tokens), so a large request costs the memory of one such batch; the token
budget of a request is enforced by both backends."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from runtime.backends.base import LoadOptions
from runtime.config import EmbeddingSettings
from runtime.errors import InvalidInput
from tests.support.embedding_models import (
    WORDS,
    write_gguf_embedding_package,
    write_onnx_encoder_package,
)
from tests.support.prereq import need_module

need_module("tokenizers")


def _texts(n: int, tokens: int) -> np.ndarray:
    rows = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(tokens)) for i in range(n)]
    return np.array([r.encode() for r in rows], dtype=object)


class PeakRss:
    """This process's resident memory, sampled every 5 ms while the block runs."""

    def __enter__(self) -> PeakRss:
        self._proc = psutil.Process()
        self.before = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def grown(self) -> int:
        return self.peak - self.before


def test_a_large_request_runs_in_token_batches_with_bounded_memory(tmp_path: Path) -> None:
    """Issue 25, item 10: 1024 texts of 400 tokens once ran as one [1024, 400, dim] batch
    (each activation 105 MB at dim 64). With max_batch_tokens = 16384 the model never holds
    more than 16,384 padded tokens at once, and the vectors are those of each text alone."""
    from runtime.backends.onnx import OnnxBackend

    package = write_onnx_encoder_package(tmp_path / "store", max_tokens=512, dim=64)
    limits = EmbeddingSettings(max_request_tokens=1_000_000, max_batch_tokens=16384)
    backend = OnnxBackend()
    backend.load(package.variants[0], LoadOptions(intra_op_threads=1, task="embedding",
                                                  embedding=limits))  # fmt: skip
    try:
        texts = _texts(1024, 400)
        backend.infer({"text": texts[:8]})  # warm up the session and its arena
        with PeakRss() as rss:
            out = backend.infer({"text": texts})
        assert out["embedding"].shape == (1024, 64) and out["tokens"].tolist() == [400] * 1024
        assert rss.grown < 80 * 2**20, f"peak grew {rss.grown >> 20} MiB"
        for i in (0, 511, 1023):
            alone = backend.infer({"text": texts[i : i + 1]})["embedding"][0]
            assert np.allclose(out["embedding"][i], alone, atol=1e-5)
        # Mixed lengths: each batch pads to its own longest text only.
        mixed = np.concatenate([_texts(3, 5), _texts(2, 300), _texts(4, 1)])
        got = backend.infer({"text": mixed})
        assert got["tokens"].tolist() == [5, 5, 5, 300, 300, 1, 1, 1, 1]
        for i in range(len(mixed)):
            alone = backend.infer({"text": mixed[i : i + 1]})["embedding"][0]
            assert np.allclose(got["embedding"][i], alone, atol=1e-5)
    finally:
        backend.unload()


def test_the_onnx_encoder_refuses_past_each_limit_before_running(tmp_path: Path) -> None:
    from runtime.backends.onnx import OnnxBackend

    package = write_onnx_encoder_package(tmp_path / "store", max_tokens=512)
    limits = EmbeddingSettings(max_inputs=10, max_text_chars=3000, max_request_tokens=1000)
    backend = OnnxBackend()
    backend.load(package.variants[0], LoadOptions(intra_op_threads=1, task="embedding",
                                                  embedding=limits))  # fmt: skip
    try:
        cases = [
            (_texts(11, 1), r"at most 10 texts per request, not 11 \(embeddings\.max_inputs\)"),
            (np.array([b"belt " * 601], dtype=object),
             r"input\[0\]: longer than 3000 characters \(embeddings\.max_text_chars\)"),
            (_texts(3, 400),
             r"more than 1000 tokens .*embeddings\.max_request_tokens"),
        ]  # fmt: skip
        for texts, message in cases:
            with pytest.raises(InvalidInput, match=message):
                backend.infer({"text": texts})
        assert backend.infer({"text": _texts(2, 400)})["tokens"].tolist() == [400, 400]
    finally:
        backend.unload()


def test_llama_embeddings_have_the_same_limits(tmp_path: Path) -> None:
    need_module("llama_cpp")
    from runtime.backends.llama import LlamaBackend

    package = write_gguf_embedding_package(tmp_path / "store")
    limits = EmbeddingSettings(max_inputs=10, max_request_tokens=100)
    backend = LlamaBackend()
    backend.load(package.variants[0], LoadOptions(intra_op_threads=1, task="embedding",
                                                  embedding=limits))  # fmt: skip
    try:
        with pytest.raises(InvalidInput, match=r"embeddings\.max_inputs"):
            backend.infer({"text": _texts(11, 1)})
        with pytest.raises(InvalidInput, match=r"embeddings\.max_request_tokens"):
            backend.infer({"text": _texts(5, 30)})
        assert backend.infer({"text": _texts(2, 10)})["embedding"].shape[0] == 2
    finally:
        backend.unload()
