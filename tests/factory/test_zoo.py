"""Real models nobody here wrote, through ``models build`` and then through the daemon
(issue 24): the model zoo (tests/support/zoo.py: ONNX files from pinned public wheels) with
golden data made here (tests/support/zoo_golden.py).

Each family is built into one store against a time budget; the build must end within the
budget plus 10 s, every zoo model must come out with an int8 rung that loads and has a
measured quality (or a reason that names the operator in the way), and every variant the
package holds must load in its runtime. Then the daemon measures the candidates on this box,
chooses, and serves each family; the held-out half of each golden set (rows the build never
saw) goes through KServe v2 binary tensors, and the served variant's quality on them, under
the package's own metric, must meet the package's floor.

Budgets and golden sets are small so that CI stays quick; the benchmark
(bench/factory_bench.py --zoo) builds with the issue's budgets.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runtime.catalog import Store
from runtime.catalog.golden import RowLayout, write_npz
from runtime.catalog.quality import score_bp
from runtime.catalog.writer import verify_package
from runtime.factory import BuildOptions, build
from runtime.factory.results import BuildResult
from tests.support import daemon_proc, zoo_golden
from tests.support.mosquitto import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

OVERRUN_S = 10.0  # the allowance past the budget (packaging, the last cut)
INT8_KINDS = ("int8-static", "int8-weights", "openvino-int8", "int8-dynamic")


@dataclass(frozen=True)
class ZooBuild:
    rows: int  # golden rows for the build; as many again are held out
    budget_s: float
    floor_bp: int
    latency_samples: int = 20
    # fidelity's relative L2 tolerance. 0.1 for the dense maps: OpenVINO runs fp32 and
    # fp16 models in bf16 on CPUs with AVX512_BF16 (this one), where a detector's map
    # lands 1-5 % from fp32's, so 5 % decides rows by chance (measured: 3 of 6 held-out
    # pages past 5 % on PP-OCRv6's fp32 served through OpenVINO, 0 past 10 %).
    tolerance: float = 0.1
    metric: str = "auto"


# A CTC recogniser is scored by agreement: the share of time steps whose most likely
# symbol is the source's (what decoding reads), not by the distance of 6625 (18710)
# probabilities, which bf16 moves past 10 % on some lines while every symbol stays.
BUILDS = {
    "ppocr-mobile-cls": ZooBuild(rows=24, budget_s=45, floor_bp=9500),  # agreement (auto)
    "ppocr-v4-det": ZooBuild(rows=6, budget_s=75, floor_bp=9000),
    "ppocr-v6-det-small": ZooBuild(rows=6, budget_s=60, floor_bp=9000),
    "ppocr-v4-rec": ZooBuild(rows=8, budget_s=60, floor_bp=9800, metric="agreement"),
    "ppocr-v6-rec-small": ZooBuild(rows=8, budget_s=60, floor_bp=9800, metric="agreement"),
    "layout-cdla": ZooBuild(rows=3, budget_s=90, floor_bp=9000, latency_samples=5),
    "silero-vad": ZooBuild(rows=32, budget_s=45, floor_bp=8000),
}
BUILD_SEED, HELD_OUT_SEED = 1, 2


@dataclass
class Built:
    result: BuildResult
    wall_s: float
    held_out: dict[str, np.ndarray]


LEFT_IN_CWD: list[str] = []  # what the builds left in their working directory


@pytest.fixture(scope="module")
def zoo_store(
    zoo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Built]]:
    """Every zoo family built into one store, each against its own budget, from an empty
    working directory (onnxruntime's shape inference writes files into it, unasked)."""
    work = tmp_path_factory.mktemp("zoo")
    store = work / "store"
    cwd = tmp_path_factory.mktemp("cwd")
    here = Path.cwd()
    os.chdir(cwd)
    try:
        built = _build_all(zoo_models, work, store)
    finally:
        os.chdir(here)
    LEFT_IN_CWD[:] = sorted(p.name for p in cwd.iterdir())
    return store, built


def _build_all(zoo_models: dict[str, Path], work: Path, store: Path) -> dict[str, Built]:
    built = {}
    for model_id, spec in BUILDS.items():
        golden = write_npz(
            work / f"{model_id}.npz", zoo_golden.golden(model_id, spec.rows, BUILD_SEED)
        )
        t0 = time.monotonic()
        result = build(
            BuildOptions(
                source=zoo_models[model_id], app=model_id, version="1.0.0", golden=golden,
                store=store, floor_bp=spec.floor_bp, time_budget_s=spec.budget_s,
                latency_samples=spec.latency_samples, fidelity_tolerance=spec.tolerance,
                metric=spec.metric,
            )
        )  # fmt: skip
        held_out = zoo_golden.golden(model_id, spec.rows, HELD_OUT_SEED)
        built[model_id] = Built(result, time.monotonic() - t0, held_out)
    return built


def test_every_build_ends_within_its_budget(zoo_store: tuple[Path, dict[str, Built]]) -> None:
    _, built = zoo_store
    over = {
        m: round(b.wall_s - BUILDS[m].budget_s, 1)
        for m, b in built.items()
        if b.wall_s > BUILDS[m].budget_s + OVERRUN_S
    }
    assert not over, f"seconds past budget + {OVERRUN_S:g} s: {over}"
    for model_id, b in built.items():
        cut = [v for v in b.result.variants if "cut at the time budget" in v.reason]
        for v in cut:  # what was cut is reported, with how long it ran
            assert any(v.variant in note for note in b.result.notes), (model_id, v.variant)
    assert LEFT_IN_CWD == [], "files left in the working directory"


def test_every_zoo_model_has_an_int8_rung_that_loads(
    zoo_store: tuple[Path, dict[str, Built]],
) -> None:
    _, built = zoo_store
    for model_id, b in built.items():
        int8 = [v for v in b.result.variants if v.kind in INT8_KINDS]
        loaded = [v for v in int8 if v.ok]
        assert loaded, {v.variant: v.reason for v in int8}
        for v in loaded:
            assert v.accuracy_bp is not None and v.latency_us, (model_id, v.variant)
            share = v.details["int8_share"]
            assert share > 0
            # named by what was written: int8 only when most weight bytes are int8
            assert (v.precision == "int8") == (not v.variant.endswith("-partial"))
            assert (share > 0.5) == (v.precision == "int8"), (model_id, v.variant, share)
        for v in int8:
            if not v.ok and "cut at the time budget" not in v.reason:
                assert v.reason and "\n" not in v.reason, (model_id, v.variant)


def test_every_packaged_variant_loads_in_its_runtime(
    zoo_store: tuple[Path, dict[str, Built]],
) -> None:
    import onnxruntime as ort
    import openvino as ov

    store, built = zoo_store
    for model_id in built:
        package = Store(store).load(model_id)
        verify_package(package)
        for v in package.variants:
            if v.meta.format == "openvino":
                ov.Core().compile_model(str(v.entrypoint), "CPU")
            else:
                ort.InferenceSession(str(v.entrypoint), providers=["CPUExecutionProvider"])
            assert v.meta.peak_memory_bytes > 0 and v.meta.latency_us


def _source_outputs(path: Path, inputs: dict[str, np.ndarray], specs: Any, output: str) -> Any:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    layout = RowLayout.of(specs, inputs)
    parts = [
        sess.run([output], request)[0] for request in layout.requests(inputs, list(inputs), batch=8)
    ]
    return np.concatenate(parts)


def _served_outputs(client: Any, app: str, inputs: dict[str, np.ndarray], specs: Any,
                    output: str) -> np.ndarray:  # fmt: skip
    import tritonclient.http as triton

    layout = RowLayout.of(specs, inputs)
    parts = []
    for request in layout.requests(inputs, list(inputs), batch=1):
        tensors = []
        for name, arr in request.items():
            t = triton.InferInput(name, list(arr.shape), triton.np_to_triton_dtype(arr.dtype))
            t.set_data_from_numpy(np.require(arr, requirements="C"), binary_data=True)
            tensors.append(t)
        wanted = [triton.InferRequestedOutput(output, binary_data=True)]
        parts.append(client.infer(app, tensors, outputs=wanted).as_numpy(output))
    return np.concatenate(parts)


def test_the_daemon_serves_each_family_at_its_floor_on_held_out_rows(
    zoo_store: tuple[Path, dict[str, Built]], zoo_models: dict[str, Path], tmp_path: Path
) -> None:
    import tritonclient.http as triton

    store, built = zoo_store
    port = free_port()
    config = daemon_proc.write_config(
        tmp_path, store, port, "[calibration]\ntensor_budget_s = 20\ntimed_runs = 5\n"
    )
    proc = daemon_proc.start(config)
    below = {}
    try:
        daemon_proc.wait_ready(f"http://127.0.0.1:{port}", proc, timeout=900)
        client = triton.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=300)
        for model_id, b in built.items():
            package = Store(store).load(model_id)
            served = client.get_model_metadata(model_id)["parameters"]["variant"]
            assert served in {v.id for v in package.variants}
            specs, output = package.meta.inputs, package.meta.outputs[0].name
            got = _served_outputs(client, model_id, b.held_out, specs, output)
            ref = _source_outputs(zoo_models[model_id], b.held_out, specs, output)
            refs = _references(package, ref)
            quality = score_bp(package.meta.metric, got, refs)
            floor = package.meta.accuracy_floor_bp
            if quality < floor:
                below[model_id] = f"{served} scores {quality} bp < floor {floor} bp"
    finally:
        daemon_proc.stop(proc)
    assert not below, below


def _references(package: Any, ref: np.ndarray) -> dict[str, np.ndarray]:
    """The metric's reference arrays for held-out rows: the source's own outputs, with the
    tolerance the package was built with."""
    from runtime.catalog.quality import top1_ids

    with np.load(package.path / package.meta.golden.file) as z:
        tolerance = z["fidelity_tolerance"] if "fidelity_tolerance" in z.files else None
    refs = {"ref_top1": top1_ids(ref), "ref_output": ref.astype(np.float32)}
    if tolerance is not None:
        refs["fidelity_tolerance"] = tolerance
    return refs
