"""The variant factory (``headframe models build``) on the demo and on a generated MLP
of about ``--size-mb`` MB: per variant bytes x fp32, quality, latency x fp32, and the
build's wall time; for int8-static the exclusion loop's quality before and after.

    .venv/bin/python bench/factory_bench.py [--model demo|mlp|both] [--size-mb 10] [--json]

Every ratio is against the source fp32 model measured in the same build (same process,
same minutes), and the load average is printed beside every figure: on a shared box
the latencies move with the load, the ratios much less. Targets (issue 12): on the
demo an int8 variant within 50 bp of fp32 quality; the default build of a 10 MB ONNX
model under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.catalog.golden import write_npz  # noqa: E402
from runtime.factory import BuildOptions, build  # noqa: E402
from runtime.factory.results import BuildResult  # noqa: E402


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def demo_source(work: Path) -> tuple[Path, Path, Path]:
    """The demo's trained fp32 MLP as ONNX, its held-out golden set, its training pixels."""
    from runtime.demo import export_onnx
    from runtime.demo.data import load_split
    from runtime.demo.factory import train_models
    from runtime.demo.train import layers

    split = load_split(0)
    model = export_onnx.save_model(layers(train_models(split)["fp32"]), work / "demo.onnx")
    golden = write_npz(
        work / "golden.npz", {"pixels": split.test_pixels, "labels": split.test_labels}
    )
    calib = write_npz(work / "calib.npz", {"pixels": split.train_pixels})
    return model, golden, calib


def mlp_source(work: Path, size_mb: float) -> tuple[Path, Path, None]:
    """A random-weight MLP of about ``size_mb`` MB (fp32) and 300 unlabelled rows."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = max(64, int(((size_mb * 2**20 / 4) / 3) ** 0.5))  # ~3 width^2 weights
    rng = np.random.default_rng(0)
    dims = [256, width, width, 2 * width, 10]
    nodes, inits, cur = [], [], "features"
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        w = rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [cur, f"w{i}"], [f"m{i}"], name=f"dense{i}"))
        cur = f"m{i}"
        if i < len(dims) - 2:
            nodes.append(helper.make_node("Relu", [cur], [f"r{i}"], name=f"relu{i}"))
            cur = f"r{i}"
    nodes.append(helper.make_node("Softmax", [cur], ["probs"], axis=-1, name="softmax"))
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = work / "mlp.onnx"
    onnx.save(model, str(path))
    x = rng.normal(0, 1, (300, 256)).astype(np.float32)
    return path, write_npz(work / "mlp-golden.npz", {"features": x}), None


def rows(result: BuildResult) -> list[dict[str, Any]]:
    out = []
    for v in result.variants:
        row: dict[str, Any] = {"variant": v.variant, "ok": v.ok}
        if v.ok:
            row.update(
                load_1m=v.details.get("load_avg_1m"),
                bytes=v.bytes,
                bytes_x_fp32=round(v.bytes / result.reference_bytes, 3),
                quality_bp=v.accuracy_bp,
                drop_bp=(result.reference_bp or 0) - (v.accuracy_bp or 0),
                latency_us=v.latency_us,
                latency_x_fp32=round(
                    (v.latency_us or 0) / max(result.reference_latency_us or 1, 1), 3
                ),
            )
            if "int8_search" in v.details:
                s = v.details["int8_search"]
                row["int8_before_bp"], row["int8_after_bp"] = s["before_bp"], s["after_bp"]
                row["int8_excluded"] = s["excluded"]
        else:
            row["reason"] = v.reason
        out.append(row)
    return out


def run(name: str, work: Path, size_mb: float, budget: float) -> dict[str, Any]:
    model, golden, calib = demo_source(work) if name == "demo" else mlp_source(work, size_mb)
    t0 = time.monotonic()
    result = build(
        BuildOptions(
            source=model,
            app=f"bench-{name}",
            version="1.0.0",
            golden=golden,
            calibration=calib,
            out=work / f"{name}-pkg",
            time_budget_s=budget,
        )
    )
    wall = time.monotonic() - t0
    return {
        "model": name,
        "source_bytes": model.stat().st_size,
        "metric": result.metric,
        "reference_bp": result.reference_bp,
        "reference_latency_us": result.reference_latency_us,
        "build_wall_s": round(wall, 1),
        "load_after": load(),
        "cores": os.cpu_count(),
        "variants": rows(result),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("demo", "mlp", "both"), default="both")
    ap.add_argument("--size-mb", type=float, default=10.0)
    ap.add_argument("--time-budget", type=float, default=600.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = ["demo", "mlp"] if args.model == "both" else [args.model]
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"# {name}: building ({load()})", file=sys.stderr)
            reports.append(run(name, Path(tmp), args.size_mb, args.time_budget))
    if args.json:
        print(json.dumps(reports, indent=2))
        return
    for r in reports:
        print(
            f"\n{r['model']}: {r['source_bytes']:,} bytes fp32, metric {r['metric']} "
            f"{r['reference_bp']} bp, build {r['build_wall_s']} s on {r['cores']} cores "
            f"({r['load_after']})"
        )
        print(f"  {'variant':16} {'bytes x':>8} {'quality':>8} {'drop':>6} {'lat x':>6}  note")
        for v in r["variants"]:
            if not v["ok"]:
                print(f"  {v['variant']:16} failed: {v['reason']}")
                continue
            note = ""
            if "int8_before_bp" in v:
                before, after = v["int8_before_bp"], v["int8_after_bp"]
                note = f"int8 {before} -> {after} bp, float: {v['int8_excluded']}"
            print(
                f"  {v['variant']:16} {v['bytes_x_fp32']:>8.3f} {v['quality_bp']:>8} "
                f"{v['drop_bp']:>6} {v['latency_x_fp32']:>6.2f}  {note} (load {v['load_1m']})"
            )


if __name__ == "__main__":
    main()
