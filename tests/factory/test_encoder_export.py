"""all-MiniLM-L6-v2 exported to ONNX (runtime/factory/encoder_export.py) and served by
headframe embeds as sentence-transformers does: the source model in torch, mean pooling
over the attention mask and L2 normalisation computed here, cosine >= 0.999 per text."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from runtime.catalog import load_package
from runtime.codecs.embeddings import embed, parse_embedding
from runtime.service import InferenceService
from tests.support.loaders import ort_loader
from tests.support.minilm import APP, minilm_package_dir, minilm_source

pytestmark = pytest.mark.slow

TEXTS = [
    "The main bearing is torqued to 450 Nm.",
    "hello",
    "Error E-4711: pump P-203 seal failure; replace seal kit SK-1014 and restart the line.",
    "Wie oft wird die Exzenterwelle geschmiert?",
    "Sensor CV-3 reports belt speed 2.1 m/s " * 6,
]


def _reference(texts: list[str]) -> np.ndarray:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    src = minilm_source()
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    model = AutoModel.from_pretrained(str(src)).eval()
    out = []
    for text in texts:  # one at a time: no padding in the reference at all
        ids = torch.tensor([tok.encode(text).ids])
        with torch.no_grad():
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        v = hidden[0].mean(dim=0).numpy()
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_served_vectors_match_sentence_transformers_pooling() -> None:
    package = load_package(minilm_package_dir())
    assert package.meta.task == "embedding" and package.meta.quality_metric == "fidelity"
    assert package.variants[0].meta.accuracy_bp is not None
    assert package.variants[0].meta.accuracy_bp >= 9990  # measured by the converter

    async def served() -> np.ndarray:
        service = InferenceService(ort_loader)
        await service.add(package)
        try:  # one batch: padded to its longest text, as the box serves it
            out, _ = await embed(service, parse_embedding({"model": APP, "input": TEXTS}), "test")
        finally:
            await service.close()
        return np.array([d["embedding"] for d in out["data"]], dtype=np.float32)

    got = asyncio.run(served())
    cosine = (got * _reference(TEXTS)).sum(axis=1)
    assert got.shape == (len(TEXTS), 384)
    assert cosine.min() >= 0.999, cosine
