"""The onnx backend on CUDA, on a machine that has a GPU and onnxruntime-gpu: every demo
ONNX variant loaded by ``OnnxBackend`` with the nvidia-gpu profile's providers, the
optimised-graph cache written then hit, the golden set run on CUDA and on the CPU, and the
time per call of each, measured in the same process.

    python bench/gpu_onnx_check.py --store DIR [--calls N]

Prints one JSON document. Exit 1 if a variant does not land on CUDAExecutionProvider, if
the cache is not hit on the second load, or if CUDA's answers differ from the CPU's: the
argmax on any golden row, or a probability by more than 1e-3 (5e-2 for int8 variants,
whose quantized kernels differ between the two providers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.backends.base import LoadOptions
from runtime.backends.onnx import OnnxBackend
from runtime.catalog import Store
from runtime.demo import APP

GPU = LoadOptions(device="gpu", providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
CPU = LoadOptions(device="cpu", providers=("CPUExecutionProvider",))


def _per_call_us(backend: OnnxBackend, feed: dict[str, np.ndarray], calls: int) -> float:
    for _ in range(20):
        backend.infer(feed)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        backend.infer(feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def check_variant(variant: Any, pixels: np.ndarray, labels: np.ndarray, calls: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        gpu_opts = replace(GPU, cache_dir=cache)
        first, second, cpu = OnnxBackend(), OnnxBackend(), OnnxBackend()
        start = time.perf_counter()
        first.load(variant, gpu_opts)
        load_s = time.perf_counter() - start
        second.load(variant, gpu_opts)
        cpu.load(variant, CPU)
        name = first.describe().inputs[0].name
        out = first.describe().outputs[0].name
        on_gpu = second.infer({name: pixels})[out]
        on_cpu = cpu.infer({name: pixels})[out]
        row = {name: pixels[:1]}
        batch = {name: np.repeat(pixels, 3, axis=0)[:1024]}
        return {
            "variant": variant.id,
            "precision": variant.meta.precision,
            "first_load": first.info().detail,
            "second_load": second.info().detail,
            "first_load_s": round(load_s, 3),
            "accuracy_cuda": float((on_gpu.argmax(1) == labels).mean()),
            "accuracy_cpu": float((on_cpu.argmax(1) == labels).mean()),
            "argmax_differs": int((on_gpu.argmax(1) != on_cpu.argmax(1)).sum()),
            "max_abs_diff": float(np.abs(on_gpu - on_cpu).max()),
            "us_per_call_batch1": {
                "cuda": round(_per_call_us(second, row, calls), 1),
                "cpu": round(_per_call_us(cpu, row, calls), 1),
            },
            "us_per_call_batch1024": {
                "cuda": round(_per_call_us(second, batch, calls // 4), 1),
                "cpu": round(_per_call_us(cpu, batch, calls // 4), 1),
            },
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--calls", type=int, default=400)
    args = ap.parse_args()
    import onnxruntime as ort

    package = Store(args.store).load(APP)
    golden = np.load(package.path / "golden.npz")
    pixels, labels = golden["pixels"].astype(np.float32), golden["labels"]
    doc: dict[str, Any] = {
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "variants": [
            check_variant(v, pixels, labels, args.calls)
            for v in package.variants
            if v.meta.format == "onnx"
        ],
    }
    print(json.dumps(doc, indent=2))
    bad = [
        v["variant"]
        for v in doc["variants"]
        if v["second_load"]["provider"] != "CUDAExecutionProvider"
        or v["second_load"]["optimized_cache"] != "hit"
        or v["argmax_differs"]
        or v["max_abs_diff"] > (5e-2 if v["precision"] == "int8" else 1e-3)
    ]
    if bad:
        print(f"not as expected on CUDA: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
