"""Demo variants side by side: bytes, golden-set accuracy, and single-request latency as a
ratio against the fp32 variant, all measured in this process with the raw runtimes
(onnxruntime / OpenVINO, one thread each, CPU).

    .venv/bin/python bench/variants_bench.py [--store DIR] [--rounds N] [--json]

Without --store the demo is built into a temporary directory first. Latencies are
sampled in interleaved rounds (every variant once per round) so a burst of load on a
shared box hits all variants alike; the ratio is of the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.catalog import Store, Variant  # noqa: E402
from runtime.demo import APP, build_demo_catalog  # noqa: E402
from runtime.demo.measure import Runner, accuracy, onnx_runner, openvino_runner  # noqa: E402

CALLS_PER_ROUND = 200


def runner_for(v: Variant) -> Runner:
    return (
        openvino_runner(v.entrypoint) if v.meta.format == "openvino" else onnx_runner(v.entrypoint)
    )


def bench(store_dir: Path, rounds: int) -> list[dict[str, object]]:
    package = Store(store_dir).load(APP)
    assert package.meta.golden is not None
    with np.load(package.path / package.meta.golden.file) as g:
        pixels, labels = g["pixels"], g["labels"]
    variants = sorted(package.variants, key=lambda v: -v.meta.bytes)
    runners = {v.id: runner_for(v) for v in variants}
    rows = [np.ascontiguousarray(pixels[i % len(pixels)][None, :]) for i in range(CALLS_PER_ROUND)]
    samples: dict[str, list[int]] = {v.id: [] for v in variants}
    for run in runners.values():  # warm-up: first calls allocate and compile
        for row in rows[:20]:
            run(row)
    for _ in range(rounds):
        for v in variants:
            run = runners[v.id]
            for row in rows:
                t0 = time.perf_counter_ns()
                run(row)
                samples[v.id].append(time.perf_counter_ns() - t0)
    base = statistics.median(samples["fp32"])
    base_bytes = package.variant("fp32").meta.bytes
    out: list[dict[str, object]] = []
    for v in variants:
        med = statistics.median(samples[v.id])
        out.append(
            {
                "variant": v.id,
                "format": v.meta.format,
                "precision": v.meta.precision,
                "bytes": v.meta.bytes,
                "bytes_ratio": round(v.meta.bytes / base_bytes, 3),
                "accuracy_bp": accuracy(runners[v.id], pixels, labels),
                "metadata_accuracy_bp": v.meta.accuracy_bp,
                "latency_median_us": round(med / 1000, 1),
                "latency_ratio_vs_fp32": round(med / base, 2),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="a store holding the demo (default: build one)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or Path(tmp)
        build_demo_catalog(store)
        results = bench(store, args.rounds)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'variant':24} {'bytes':>8} {'x fp32':>7} {'acc bp':>7} {'latency us':>11} {'x fp32':>7}"
    )
    for r in results:
        print(
            f"{r['variant']:24} {r['bytes']:>8} {r['bytes_ratio']:>7} {r['accuracy_bp']:>7} "
            f"{r['latency_median_us']:>11} {r['latency_ratio_vs_fp32']:>7}"
        )


if __name__ == "__main__":
    main()
