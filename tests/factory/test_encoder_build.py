"""`headframe models build` for a sentence encoder, on the real all-MiniLM-L6-v2: the
sentence-transformers directory -> ONNX -> fp32, fp16 and int8-dynamic variants, each
scored by its mean cosine similarity to the source model's own vectors over the golden
texts -> an embedding package that `models add` takes and the box serves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tests.support.prereq import need_module

need_module("torch")
need_module("transformers")

from runtime.catalog import Store, load_package  # noqa: E402
from runtime.codecs.embeddings import embed, parse_embedding  # noqa: E402
from runtime.factory.encoder_export import check_source, source_vectors  # noqa: E402
from runtime.service import InferenceService  # noqa: E402
from tests.support.factory_sources import cli  # noqa: E402
from tests.support.knowledge import MANUAL_FACTS, STDLIB_QUESTIONS  # noqa: E402
from tests.support.loaders import ort_loader  # noqa: E402
from tests.support.minilm import minilm_source  # noqa: E402

pytestmark = pytest.mark.slow

TEXTS = (
    [q for q, _, _ in MANUAL_FACTS]
    + [q for q, _ in STDLIB_QUESTIONS]
    + [
        "Error E-4711: pump P-203 seal failure; replace seal kit SK-1014 and restart the line.",
        "Wie oft wird die Exzenterwelle geschmiert?",
    ]
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    d = tmp_path_factory.mktemp("encoder")
    golden = d / "texts.txt"
    golden.write_text("\n".join(TEXTS) + "\n")
    out = d / "pkg"
    code, stdout, err = cli(
        "models", "build", minilm_source(), "--app", "minilm", "--version", "2.0.0",
        "--golden", golden, "--out", out, "--floor-bp", "9000",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    return out, json.loads(stdout)


def test_every_rung_is_built_and_scored_against_the_source(built) -> None:  # type: ignore[no-untyped-def]
    _, result = built
    assert result["metric"] == "fidelity" and result["source_format"] == "sentence-transformers"
    rungs = {v["variant"]: v for v in result["variants"]}
    assert set(rungs) == {"fp32", "fp16", "int8-dynamic"}
    assert all(v["ok"] and v["kept"] for v in rungs.values()), rungs
    assert rungs["fp32"]["accuracy_bp"] >= 9990
    assert rungs["fp16"]["accuracy_bp"] >= 9950
    assert 9800 <= rungs["int8-dynamic"]["accuracy_bp"] <= rungs["fp32"]["accuracy_bp"]
    assert rungs["int8-dynamic"]["bytes"] < rungs["fp16"]["bytes"] < rungs["fp32"]["bytes"]
    assert all(v["latency_us"] > 0 for v in rungs.values())
    assert result["details"]["encoder"] == {"dimensions": 384, "max_tokens": 256,
                                            "golden_texts": len(TEXTS)}  # fmt: skip


def test_models_add_takes_it_and_the_box_serves_what_was_measured(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, result = built
    store = tmp_path / "store"
    code, _, err = cli("models", "add", out, "--store", store)
    assert code == 0, err
    package = Store(store).load("minilm")
    assert package.meta.task == "embedding" and package.meta.quality_metric == "fidelity"
    assert package.meta.golden is None  # the texts stay with the build
    src = minilm_source()
    reference = source_vectors(src, TEXTS, check_source(src))
    measured = {v["variant"]: v["accuracy_bp"] for v in result["variants"]}

    async def served(variant: str) -> np.ndarray:
        service = InferenceService(lambda p, pin: ort_loader(p, variant))
        await service.add(package)
        try:
            body, _ = await embed(service, parse_embedding({"model": "minilm", "input": TEXTS}),
                                  "test")  # fmt: skip
        finally:
            await service.close()
        return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)

    for variant in ("fp32", "int8-dynamic"):
        cosine = (asyncio.run(served(variant)) * reference).sum(axis=1)
        # the box's vectors are the ones the build scored (served in one batch, as built)
        assert abs(int(np.floor(cosine.mean() * 10_000)) - measured[variant]) <= 2, variant
    assert load_package(out).variant("int8-dynamic").meta.precision == "int8"


def test_bad_encoder_input_is_refused_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    code, _, err = cli("models", "build", minilm_source(), "--app", "m", "--version", "1.0.0",
                       "--golden", empty, "--out", tmp_path / "o")  # fmt: skip
    assert code == 2 and "no golden texts" in err
    texts = tmp_path / "t.txt"
    texts.write_text("hello\n")
    code, _, err = cli("models", "build", minilm_source(), "--app", "m", "--version", "1.0.0",
                       "--golden", texts, "--out", tmp_path / "o",
                       "--variants", "int8-static")  # fmt: skip
    assert code == 2 and "unknown variant int8-static for a sentence encoder" in err
    not_st = tmp_path / "dir"
    not_st.mkdir()
    code, _, err = cli("models", "build", not_st, "--app", "m", "--version", "1.0.0",
                       "--golden", texts, "--out", tmp_path / "o")  # fmt: skip
    assert code == 2 and "not a sentence-transformers model" in err
    assert not (tmp_path / "o").exists()
