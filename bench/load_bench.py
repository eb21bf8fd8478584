"""Load time of the demo variants: what the compiled-model caches and the loader cost or save.

    .venv/bin/python bench/load_bench.py [--store DIR] [--rounds N] [--json]

For each case the baseline is the same backend loading the same file with no cache, in the
same run; rounds are interleaved so load from elsewhere on the box hits every case alike.
Cases: onnxruntime with its optimised graph cached (hit), OpenVINO with CACHE_DIR (hit),
and the full VariantLoader call (select + size/sha256 check + load) against a bare load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.backends.base import LoadOptions  # noqa: E402
from runtime.backends.onnx import OnnxBackend  # noqa: E402
from runtime.backends.openvino import OpenVinoBackend  # noqa: E402
from runtime.catalog import Store  # noqa: E402
from runtime.config import Settings  # noqa: E402
from runtime.demo import APP, build_demo_catalog  # noqa: E402
from runtime.hardware import probe  # noqa: E402
from runtime.loading.loader import VariantLoader  # noqa: E402
from runtime.profiles import load_profiles, match  # noqa: E402
from tests.support.box import box_for  # noqa: E402


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def bench(store_dir: Path, rounds: int) -> list[dict[str, object]]:
    package = Store(store_dir).load(APP)
    onnx_v = package.variant("pruned50-fp32")
    ir_v = package.variant("pruned50-openvino-fp16")
    cache = Path(tempfile.mkdtemp(prefix="hf-load-bench-"))
    warm = LoadOptions(cache_dir=str(cache))
    OnnxBackend().load(onnx_v, warm)  # fill both caches once
    OpenVinoBackend().load(ir_v, warm)
    report = probe("/")
    profile = match(report, load_profiles()).profile
    loader = VariantLoader(box_for(Settings(paths={"cache_dir": cache}), report, profile))
    first = profile.targets[0].backend
    bare_cls = OpenVinoBackend if first == "openvino" else OnnxBackend
    chosen = loader(package).variant
    cases: dict[str, Callable[[], object]] = {
        "onnx, no cache": lambda: OnnxBackend().load(onnx_v, LoadOptions()),
        "onnx, optimised graph cached": lambda: OnnxBackend().load(onnx_v, warm),
        "openvino, no cache": lambda: OpenVinoBackend().load(ir_v, LoadOptions()),
        "openvino, CACHE_DIR hit": lambda: OpenVinoBackend().load(ir_v, warm),
        f"bare {first} load of the chosen variant": lambda: bare_cls().load(chosen, warm),
        "VariantLoader (select + verify + load)": lambda: loader(package),
    }
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(_ms(fn))
    med = {k: statistics.median(v) for k, v in samples.items()}
    baselines = {
        "onnx, optimised graph cached": "onnx, no cache",
        "openvino, CACHE_DIR hit": "openvino, no cache",
        "VariantLoader (select + verify + load)": f"bare {first} load of the chosen variant",
    }
    return [
        {
            "case": k,
            "median_ms": round(med[k], 2),
            "x_baseline": round(med[k] / med[baselines[k]], 2) if k in baselines else 1.0,
        }
        for k in cases
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, help="a store holding the demo (default: build one)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    store = args.store or Path(tempfile.mkdtemp(prefix="hf-demo-"))
    build_demo_catalog(store)
    rows = bench(store, args.rounds)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['case']:<45} {r['median_ms']:>9.2f} ms  x{r['x_baseline']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
