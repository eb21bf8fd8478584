"""`headframe serve` imports only the runtimes its models load (issue 15 item 8): the probe
finds the others from package metadata, so a store of ONNX variants served by onnxruntime
never pays for importing OpenVINO or llama.cpp."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.serving_models import write_linear_package

# `headframe serve` in a process that prints the modules it imported when it exits.
SERVE = """
import atexit, json, sys
atexit.register(lambda: print("\\nIMPORTED " + json.dumps(sorted(sys.modules)), flush=True))
sys.argv = ["headframe", "serve", "--config", sys.argv[1]]
from runtime.cli import main
main()
"""


@pytest.mark.slow  # starts the daemon as a process
def test_serve_on_an_onnx_store_imports_neither_openvino_nor_llama_cpp(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port)
    # A profile that runs ONNX on onnxruntime first (x86-64-avx2/avx512 put OpenVINO
    # first, and then OpenVINO is the runtime that loads the model).
    config.write_text('profile = "generic-x86-64"\n' + config.read_text())
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        tensor = {"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}
        reply = httpx.post(
            f"{url}/v2/models/part-id-reader/infer", json={"inputs": [tensor]}, timeout=10
        )
        assert reply.status_code == 200, reply.text
        served = httpx.get(f"{url}/status", timeout=10).json()["applications"][0]
        assert served["backend"] == "onnx", served
    finally:
        daemon_proc.stop(proc)
    out = proc.stdout.read() if proc.stdout else ""
    line = next(x for x in out.splitlines() if x.startswith("IMPORTED "))
    imported = set(json.loads(line[len("IMPORTED ") :]))
    assert "onnxruntime" in imported  # the probe did see the serving runtime load
    assert not {"openvino", "llama_cpp"} & imported
