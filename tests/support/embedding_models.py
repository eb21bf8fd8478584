"""Embedding packages (task "embedding") made of real model files the tests build.

- ``write_gguf_embedding_package``: the random-weight llama GGUF of tests.support.gguf_models
  (it declares no pooling, so llama.cpp returns one vector per token and headframe
  mean-pools them).
- ``write_onnx_encoder_package``: a small sentence encoder built with onnx.helper
  (embedding lookup -> linear -> tanh, per-token output [batch, tokens, dim]) and its
  ``tokenizer.json`` built with the ``tokenizers`` library (word-level vocabulary,
  whitespace pre-tokenizer, truncation length ``max_tokens``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.catalog import Lineage, ModelPackage, PackageMeta, VariantMeta, load_package
from runtime.catalog.writer import file_entry, write_package_meta, write_variant_meta
from tests.support.gguf_models import write_llama_gguf

_TEXT = """the a of to and is in on belt motor pump conveyor fault alarm sensor valve line
stop start hello world status check ok yes no temperature pressure bearing manual incident
replace lubricate inspect weekly daily crusher screen feeder vibration high low"""
WORDS = _TEXT.split()


def _package(store: Path, app: str, truncation: bool | None) -> Path:
    pdir = Path(store) / app / "1.0.0"
    write_package_meta(
        PackageMeta(
            schema_version=2,
            application=app,
            version="1.0.0",
            task="embedding",
            description="random-weight embedding model for tests",
            lineage=Lineage(foundation="test", sector="test", application=app),
            accuracy_floor_bp=0,
            embedding_truncation=truncation,
        ),
        pdir,
    )
    return pdir


def _variant(vdir: Path, variant: str, fmt: str, precision: str, entry: str) -> None:
    files = tuple(file_entry(p, vdir) for p in sorted(vdir.iterdir()) if p.is_file())
    size = sum(f.size for f in files)
    write_variant_meta(
        VariantMeta(
            variant=variant,
            format=fmt,  # type: ignore[arg-type]
            precision=precision,
            entrypoint=entry,
            files=files,
            bytes=size,
            peak_memory_bytes=size + 64 * 1024 * 1024,
            device_classes=("cpu",),
        ),
        vdir,
    )


def write_gguf_embedding_package(store: Path, app: str = "gguf-embedder") -> ModelPackage:
    pdir = _package(store, app, None)
    vdir = pdir / "variants" / "tiny-f32"
    write_llama_gguf(vdir / "model.gguf", size="tiny", precision="f32", seed=3)
    _variant(vdir, "tiny-f32", "gguf", "f32", "model.gguf")
    return load_package(pdir)


def encoder_model(vocab: int, dim: int = 32, seed: int = 0) -> object:
    """input_ids/attention_mask INT64 [batch, tokens] -> last_hidden_state [batch, tokens, dim]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    table = rng.normal(0, 1.0, (vocab, dim)).astype(np.float32)
    w = rng.normal(0, 0.5, (dim, dim)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["e"], axis=0),
        helper.make_node("MatMul", ["e", "w"], ["h"]),
        helper.make_node("Tanh", ["h"], ["last_hidden_state"]),
    ]
    ints = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
        for n in ("input_ids", "attention_mask")
    ]
    out = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", dim]
    )
    graph = helper.make_graph(
        nodes, "encoder", ints, [out],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_tokenizer(path: Path, max_tokens: int) -> int:
    """A word-level tokenizer.json; returns the vocabulary size."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1} | {w: i + 2 for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.enable_truncation(max_length=max_tokens)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.save(str(path))
    return len(vocab)


def write_onnx_encoder_package(
    store: Path,
    app: str = "encoder",
    *,
    max_tokens: int = 16,
    truncation: bool = True,
    dim: int = 32,
) -> ModelPackage:
    import onnx

    pdir = _package(store, app, truncation)
    vdir = pdir / "variants" / "fp32"
    vdir.mkdir(parents=True)
    vocab = write_tokenizer(vdir / "tokenizer.json", max_tokens)
    onnx.save(encoder_model(vocab, dim), str(vdir / "model.onnx"))  # type: ignore[arg-type]
    _variant(vdir, "fp32", "onnx", "fp32", "model.onnx")
    return load_package(pdir)
