"""The daemon's own calibration on a GPU machine: it should pick the CPU for the batch-1
demo and the GPU for a wide model served at a large batch. Needs a GPU and
onnxruntime-gpu (CUDAExecutionProvider); NOT run in CI, nor on a box without a GPU.

    python bench/gpu_calibration_check.py [--width 2048] [--batch 1024] [--budget 120]

Builds the demo store and a wide fp32/fp16 MLP package (``headframe models build`` on a
model made here, golden rows random), then runs what the daemon runs before a first load
(runtime.box.build_box on this machine's probe, runtime.loading.calibrator.measuring_loader) with
``[[applications]] max_batch`` 1 for the demo and ``--batch`` for the wide model, objective
``fastest``. Prints one JSON document: the profile, each application's measured table and
choice, and the load average. Exit 1 unless the demo lands on a CPU target and the wide
model on a GPU target (the figures to record in bench/README.md, "GPU").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime.box import build_box  # noqa: E402
from runtime.catalog import Store  # noqa: E402
from runtime.config import Settings  # noqa: E402
from runtime.demo import APP as DEMO  # noqa: E402
from runtime.demo import build_demo_catalog  # noqa: E402
from runtime.loading.calibrator import measuring_loader  # noqa: E402

WIDE = "wide-mlp"


def wide_mlp(path: Path, width: int, layers: int = 4, classes: int = 16) -> None:
    """An fp32 MLP ``width`` wide: heavy enough per row that a GPU wins at a large batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    dims = [width] * layers + [classes]
    for i, out_dim in enumerate(dims):
        in_dim = width
        w = (rng.standard_normal((in_dim, out_dim)) / np.sqrt(in_dim)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]))
        last = i == len(dims) - 1
        act = "Softmax" if last else "Relu"
        out = "probabilities" if last else f"h{i}"
        nodes.append(helper.make_node(act, [f"m{i}"], [out], **({"axis": -1} if last else {})))
        prev = out
    graph = helper.make_graph(
        nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", classes])],
        inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def build_wide(work: Path, store: Path, width: int) -> None:
    src = work / "wide.onnx"
    wide_mlp(src, width)
    golden = work / "golden.npz"
    np.savez(golden, x=np.random.default_rng(1).standard_normal((256, width)).astype(np.float32))
    cmd = [sys.executable, "-m", "runtime", "models", "build", str(src), "--app", WIDE,
           "--version", "1.0.0", "--golden", str(golden), "--store", str(store),
           "--variants", "fp32,fp16"]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO, stdout=sys.stderr)  # keep stdout one JSON


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--budget", type=float, default=120.0, help="calibration s per app")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hf-gpu-cal-"))
    store = work / "store"
    build_demo_catalog(store)
    build_wide(work, store, args.width)
    settings = Settings(
        paths={"state_dir": work / "state", "store_dir": store, "cache_dir": work / "cache",
               "profiles_dir": REPO / "device_profiles"},
        applications=[{"name": DEMO, "max_batch": 1},
                      {"name": WIDE, "max_batch": args.batch}],
        objective="fastest",
        calibration={"tensor_budget_s": args.budget, "timed_runs": 30},
    )  # fmt: skip
    box = build_box(settings)
    loader, calibrator = measuring_loader(box)
    doc: dict[str, Any] = {"profile": box.profile.name, "apps": {}}
    for app in (DEMO, WIDE):
        selection = loader.select(Store(store).load(app))
        chosen = selection.chosen
        doc["apps"][app] = {
            "batch": box.batch_for(app),
            "chosen": None
            if chosen is None
            else f"{chosen.variant.variant} on {chosen.backend}/{chosen.device}",
            "device": None if chosen is None else chosen.device,
            "reason": selection.reason,
            "calibration": calibrator.last.get(app),
        }
    doc["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(doc, indent=2, default=str))
    demo_dev = doc["apps"][DEMO]["device"] or ""
    wide_dev = doc["apps"][WIDE]["device"] or ""
    ok = demo_dev.startswith("cpu") and wide_dev.startswith("gpu")
    print(f"demo at batch 1 on {demo_dev}, {WIDE} at batch {args.batch} on {wide_dev}: "
          + ("as expected" if ok else "NOT as expected"), file=sys.stderr)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
