"""GGUF rungs by llama.cpp's own quantizer, and what a text model is measured by.

``quantize`` calls ``llama_model_quantize`` through llama-cpp-python's binding, as the
``llama-quantize`` tool does, optionally with ``prune_layers``: blocks dropped while
quantizing, pruning without training, measured like every other rung. ``run_text``
evaluates the golden tokens once and returns every position's logits (the next-token
argmaxes and the perplexity come from them) and the median single-token decode time on
one thread.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.factory.spec import BuildInputError

MAX_TOKENS = 512


def ftype_of(qtype: str) -> int:
    """llama.cpp's file type number for a rung name (q8_0, q4_k_m, f16 ...)."""
    import llama_cpp

    name = "LLAMA_FTYPE_MOSTLY_" + qtype.upper()
    value = getattr(llama_cpp, name, None)
    if value is None:
        raise ValueError(f"this llama-cpp-python has no quantization type {qtype!r}")
    return int(value)


def quantize(
    src: Path, dst: Path, qtype: str, *, prune: Sequence[int] = (), threads: int = 0
) -> Path:
    """Quantize the GGUF ``src`` (f32/f16/bf16) to ``qtype`` at ``dst``, without the
    transformer blocks in ``prune`` (llama.cpp renumbers the rest)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_of(qtype)
    params.nthread = threads
    if prune:
        check_prune_support()
        # llama.cpp reads the indices up to a -1; the array must outlive the call
        layers = (ctypes.c_int32 * (len(prune) + 1))(*sorted(prune), -1)
        params.prune_layers = ctypes.cast(layers, ctypes.POINTER(ctypes.c_int32))
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise RuntimeError(f"llama.cpp could not quantize to {qtype} (code {rc})")
    return dst


def check_prune_support() -> None:
    """Layer pruning needs the binding whose ``prune_layers`` is a -1-terminated int32
    array (llama-cpp-python >= 0.3.36); older ones pass a C++ vector or nothing."""
    import llama_cpp

    fields = {f[0]: f[1] for f in llama_cpp.llama_model_quantize_params._fields_}
    if fields.get("prune_layers") is not ctypes.POINTER(ctypes.c_int32):
        raise RuntimeError(
            f"llama-cpp-python {llama_cpp.__version__} cannot prune layers while quantizing "
            "(needs >= 0.3.36)"
        )


def read_source(path: Path) -> tuple[Any, str]:
    """The GGUFReader of a source and its file type; BuildInputError when it is not a
    GGUF that quantizing makes smaller (f32, f16, bf16)."""
    from runtime.catalog.inspect import inspect_gguf
    from runtime.errors import MetadataError

    try:
        info = inspect_gguf(path)
    except MetadataError as e:
        raise BuildInputError(e.message) from e
    if info.precision not in ("fp32", "f32", "fp16", "f16", "bf16"):
        raise BuildInputError(
            f"{path}: the GGUF is already {info.precision}; models build quantizes "
            "f32, f16 or bf16 sources"
        )
    import gguf

    return gguf.GGUFReader(str(path)), info.precision


def block_count(reader: Any) -> int:
    arch = _field(reader, "general.architecture")
    return int(_field(reader, f"{arch}.block_count") or 0)


def _field(reader: Any, key: str) -> Any:
    f = reader.get_field(key)
    if f is None:
        return None
    return f.contents()


@dataclass(frozen=True)
class TextRun:
    logits: np.ndarray  # [len(tokens), vocab]: row i predicts token i + 1
    latency_us: int  # median single-token decode, one thread

    @property
    def next_ids(self) -> np.ndarray:
        return np.asarray(np.argmax(self.logits[:-1], axis=1), dtype=np.int32)


def _llama(path: Path, n_ctx: int) -> Any:
    from llama_cpp import Llama

    return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=1, verbose=False)


def tokenize(path: Path, text: str) -> list[int]:
    """The source model's tokens for ``text`` (BOS first), cut to MAX_TOKENS."""
    llm = _llama(path, 64)
    try:
        return list(llm.tokenize(text.encode("utf-8"), add_bos=True))[:MAX_TOKENS]
    finally:
        _close(llm)


def run_text(path: Path, tokens: Sequence[int]) -> TextRun:
    """Feed ``tokens`` one at a time (as LlamaBackend.next_token_ids does on a box, so the
    trial reproduces these figures) and keep every position's logits and decode time."""
    import llama_cpp

    llm = _llama(path, len(tokens) + 8)
    try:
        n_vocab = llm.n_vocab()
        rows, times = [], []
        for token in tokens:
            t0 = time.perf_counter_ns()
            llm.eval([int(token)])
            times.append(time.perf_counter_ns() - t0)
            logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            rows.append(np.ctypeslib.as_array(logits, shape=(n_vocab,)).copy())
    finally:
        _close(llm)
    return TextRun(np.stack(rows), max(1, int(np.median(times) // 1000)))


def _close(llm: Any) -> None:
    close = getattr(llm, "close", None)
    if close is not None:
        close()
