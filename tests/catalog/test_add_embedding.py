"""`headframe models add FILE --task embedding`, and embedding GGUFs detected by themselves:
what the CLI says it decided, and that the package really embeds through the service."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.catalog.inspect import inspect_model
from runtime.cli import app
from tests.support.bert_gguf import write_bert_gguf
from tests.support.gguf_models import write_llama_gguf
from tests.support.prereq import need_module


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_bert_gguf_is_detected_as_an_embedding_model(tmp_path: Path) -> None:
    info = inspect_model(write_bert_gguf(tmp_path / "bert.gguf"))
    assert info.task == "embedding"
    assert info.task_reason == "GGUF architecture 'bert' is an encoder (pooling type mean)"
    llama = inspect_model(write_llama_gguf(tmp_path / "llama.gguf"))
    assert llama.task == "text" and "decoder with no pooling type" in llama.task_reason


def test_models_add_says_what_it_decided_and_the_package_embeds(tmp_path: Path) -> None:
    need_module("llama_cpp")
    store = tmp_path / "store"
    code, out, err = run("models", "add", str(write_bert_gguf(tmp_path / "bert.gguf")),
                         "--app", "site-embedder", "--store", str(store))  # fmt: skip
    assert code == 0, err
    assert (
        "task: Imported from bert.gguf as embedding: GGUF architecture 'bert' is an encoder" in out
    )
    package = Store(store).load("site-embedder")
    assert package.meta.task == "embedding" and package.meta.schema_version == 2

    from runtime.codecs.embeddings import embed, parse_embedding
    from runtime.service import InferenceService
    from tests.support.loaders import ort_loader

    async def vectors() -> np.ndarray:
        service = InferenceService(ort_loader)
        await service.add(package)
        try:
            texts = ["pump seal", "belt fault", "pump seal"]
            request = parse_embedding({"model": "site-embedder", "input": texts})
            out, _ = await embed(service, request, "test")
        finally:
            await service.close()
        return np.array([d["embedding"] for d in out["data"]])

    v = asyncio.run(vectors())
    assert v.shape == (3, 64) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert np.allclose(v[0], v[2], atol=1e-5) and not np.allclose(v[0], v[1], atol=1e-2)


def test_task_embedding_on_a_llama_gguf_and_refusals(tmp_path: Path) -> None:
    store = tmp_path / "store"
    gguf = write_llama_gguf(tmp_path / "llama.gguf")
    code, out, _ = run("models", "add", str(gguf), "--task", "embedding", "--store", str(store))
    assert code == 0
    assert "as embedding: --task embedding (inspection said text:" in out
    code, _, err = run("models", "add", str(gguf), "--app", "x", "--task", "tensor",
                       "--store", str(store))  # fmt: skip
    assert code == 2 and "a gguf model can be imported as text or embedding" in err
    code, _, err = run("models", "add", str(gguf), "--app", "y", "--task", "pictures",
                       "--store", str(store))  # fmt: skip
    assert code == 2 and "not one of tensor, text, embedding" in err


def test_an_onnx_encoder_needs_its_tokenizer(tmp_path: Path) -> None:
    need_module("onnx")
    import onnx

    from tests.support.embedding_models import encoder_model, write_tokenizer

    model = tmp_path / "enc" / "model.onnx"
    model.parent.mkdir()
    onnx.save(encoder_model(vocab=80), str(model))  # type: ignore[arg-type]
    store = tmp_path / "store"
    code, _, err = run("models", "add", str(model), "--task", "embedding", "--store", str(store))
    assert code == 2 and "needs its tokenizer.json beside it" in err
    write_tokenizer(model.parent / "tokenizer.json", max_tokens=16)
    code, _out, err = run("models", "add", str(model), "--task", "embedding", "--store", str(store))
    assert code == 0, err
    files = {f.path for f in Store(store).load("model").variants[0].meta.files}
    assert files == {"model.onnx", "tokenizer.json"}


@pytest.mark.parametrize("pooling", ["none"])
def test_bert_without_pooling_metadata_is_still_an_encoder(tmp_path: Path, pooling: str) -> None:
    info = inspect_model(write_bert_gguf(tmp_path / "b.gguf", pooling=pooling))
    assert info.task == "embedding" and "no pooling type" in info.task_reason
