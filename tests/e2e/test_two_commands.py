"""The issue's promise: from one fp32 ONNX file to a served, selected, measured family in
two commands, ``models build`` and ``serve``, as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from runtime.catalog import Store
from tests.support import daemon_proc
from tests.support.factory_sources import Source
from tests.support.mosquitto import free_port

pytestmark = pytest.mark.slow


def test_build_then_serve(conv_source: Source, tmp_path: Path) -> None:
    store = tmp_path / "store"
    build = subprocess.run(
        [sys.executable, "-m", "runtime", "models", "build", str(conv_source.model),
         "--app", "conv-reader", "--version", "1.0.0", "--golden", str(conv_source.golden),
         "--store", str(store), "--floor-bp", "8000", "--variants", "fp32,fp16,int8-static",
         "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    package = Store(store).load("conv-reader")
    port = free_port()
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port))
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        x = conv_source.inputs["image"][:2]
        body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": list(x.shape),
                            "data": x.ravel().tolist()}]}  # fmt: skip
        r = httpx.post(f"{url}/v2/models/conv-reader/infer", json=body, timeout=30)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["name"] == "probs" and out["shape"] == [2, 10]
        np.testing.assert_allclose(np.reshape(out["data"], (2, 10)).sum(axis=1), 1.0, rtol=1e-3)
        status = httpx.get(f"{url}/status", timeout=10).json()
        app = next(a for a in status["applications"] if a["app"] == "conv-reader")
        qualifying = [v for v in package.variants if (v.meta.accuracy_bp or 0) >= 8000]
        assert app["variant"] in {v.id for v in qualifying}
    finally:
        daemon_proc.stop(proc)
