"""An ONNX embedding package served on every shipped device profile (forced with
``profile = "<name>"`` as an operator would, on this machine's hardware): whichever
backend the profile puts first, /v1/embeddings answers, because targets that cannot serve
the package's task are skipped with a reason."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from runtime.box import build_box
from runtime.config import Settings
from runtime.loading.loader import VariantLoader
from runtime.profiles import load_profiles
from tests.support.embedding_models import write_onnx_encoder_package
from tests.support.http_server import serving
from tests.support.prereq import need_module

need_module("tokenizers")

SHIPPED = sorted(p.name for p in load_profiles())


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> object:
    return write_onnx_encoder_package(tmp_path_factory.mktemp("store"), max_tokens=32)


@pytest.mark.parametrize("profile", SHIPPED)
def test_an_onnx_embedding_package_serves_on_every_shipped_profile(
    profile: str, encoder: object, tmp_path: Path
) -> None:
    """Issue 25, item 9: on OpenVINO-first profiles (x86-64-avx2, -avx512, the Intel ones)
    the loader put the encoder on OpenVINO, which has no tokenizer path, and every
    /v1/embeddings answered 400."""
    settings = Settings(
        profile=profile, paths={"state_dir": tmp_path / "state", "cache_dir": tmp_path / "cache"}
    )  # type: ignore[arg-type]
    loader = VariantLoader(build_box(settings))
    with serving([encoder], loader=loader, settings=settings) as handle:
        r = httpx.post(
            handle.url + "/v1/embeddings",
            json={"model": "encoder", "input": ["pump pressure high", "belt fault"]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        vectors = np.array([d["embedding"] for d in r.json()["data"]])
        assert vectors.shape[0] == 2 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
        status = httpx.get(handle.url + "/v2/models/encoder", timeout=10).json()
        assert status["platform"] == "onnxruntime_onnx", status
