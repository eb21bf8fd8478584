"""``headframe models build`` on ONNX sources: every variant is made, loads in its
backend, and carries the quality that an independent measurement finds."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from runtime.catalog import load_package
from runtime.catalog.writer import verify_package
from tests.support.factory_sources import Source, cli
from tests.support.source_models import run_onnx

pytestmark = pytest.mark.slow


def _outputs(variant_dir: Path, entry: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of a built variant, run by the runtime directly (not by the
    factory's own measuring code), in batches of 64 rows as the fleet trial runs them
    (int8-dynamic's activation scales depend on the batch)."""
    path = variant_dir / entry
    n = len(next(iter(inputs.values())))
    batches = [{k: v[i : i + 64] for k, v in inputs.items()} for i in range(0, n, 64)]
    if path.suffix == ".onnx":
        return np.concatenate([run_onnx(path, b) for b in batches])
    import openvino as ov

    # In f32, as the daemon's OpenVINO backend computes on a CPU (not the CPU plugin's
    # default bf16 on AVX512_BF16/AMX machines).
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.concatenate([np.asarray(compiled(b)[compiled.outputs[0]]) for b in batches])


def _share_bp(hits: np.ndarray) -> int:
    return int(np.floor(hits.mean() * 10_000 + 0.5))


def test_conv_classifier_family(conv_source: Source, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    code, stdout, err = cli(
        "models", "build", conv_source.model, "--app", "conv-reader", "--version", "1.0.0",
        "--golden", conv_source.golden, "--out", out, "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["metric"] == "top1"
    by_id = {v["variant"]: v for v in report["variants"]}
    # int8-dynamic quantizes the one MatMul (16 x 10): most weight bytes stay fp32, and the
    # rung is named for what it is (issue 24)
    expected = {
        "fp32", "fp16", "int8-dynamic-partial", "int8-static", "int8-weights", "openvino-fp16",
        "openvino-int8",
    }  # fmt: skip
    assert set(by_id) == expected
    assert all(v["ok"] for v in by_id.values()), {k: v["reason"] for k, v in by_id.items()}
    package = load_package(out)
    verify_package(package)
    assert {v.id for v in package.variants} == expected
    assert labels_in(out / "golden.npz") is not None
    for v in package.variants:
        got = _outputs(v.path, v.meta.entrypoint, conv_source.inputs)
        independent = _share_bp(np.argmax(got, axis=1) == conv_source.labels)
        assert v.meta.accuracy_bp == independent, v.id
        assert v.meta.latency_us and v.meta.latency_us > 0
        assert v.meta.reference_cpu
    precision = {v.id: v.meta.precision for v in package.variants}
    assert precision["fp32"] == precision["int8-dynamic-partial"] == "fp32"
    assert precision["int8-static"] == precision["openvino-int8"] == "int8"
    assert precision["int8-weights"] == "int8"
    assert precision["fp16"] == precision["openvino-fp16"] == "fp16"
    sizes = {v.id: v.meta.bytes for v in package.variants}
    assert sizes["fp16"] < sizes["fp32"] and sizes["int8-static"] < sizes["fp32"]
    # schema 1: top1 is what every box already reads
    assert tomllib.loads((out / "package.toml").read_text())["schema_version"] == 1
    assert (out / "build-report.json").is_file()


def labels_in(path: Path) -> np.ndarray | None:
    with np.load(path) as z:
        return z["labels"] if "labels" in z.files else None


def test_int8_static_weights_fit_in_seven_bits(conv_source: Source, tmp_path: Path) -> None:
    """The default reduce-range scheme: no weight outside [-64, 64], so a pair of u8 x s8
    products (VPMADDUBSW) sums to at most 2 x 255 x 64 = 32640 and never saturates its
    16 bits on x86 CPUs without VNNI."""
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "pkg"
    code, _, err = cli(
        "models", "build", conv_source.model, "--app", "conv", "--version", "1.0.0",
        "--golden", conv_source.golden, "--out", out, "--variants", "fp32,int8-static",
    )  # fmt: skip
    assert code == 0, err
    model = onnx.load(str(out / "variants" / "int8-static" / "model.onnx"))
    weights = [
        numpy_helper.to_array(t)
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert weights, "the int8 model has int8 weights"
    assert all(w.min() >= -64 and w.max() <= 64 for w in weights)
    report = json.loads((out / "build-report.json").read_text())
    int8 = next(v for v in report["variants"] if v["variant"] == "int8-static")
    assert int8["details"]["scheme"] == "reduce-range"


def test_embedding_head_scores_fidelity_at_schema_2(
    embedding_source: Source, tmp_path: Path
) -> None:
    out = tmp_path / "pkg"
    code, _, err = cli(
        "models", "build", embedding_source.model, "--app", "embedder", "--version", "2.0.0",
        "--golden", embedding_source.golden, "--out", out, "--metric", "fidelity",
        "--fidelity-tolerance", "0.02", "--variants", "fp32,fp16,int8-dynamic",
    )  # fmt: skip
    assert code == 0, err
    meta = tomllib.loads((out / "package.toml").read_text())
    assert meta["schema_version"] == 2 and meta["quality_metric"] == "fidelity"
    with np.load(out / "golden.npz") as z:
        ref = z["ref_output"]
        assert float(z["fidelity_tolerance"]) == 0.02
        assert "labels" not in z.files
    np.testing.assert_allclose(ref, run_onnx(embedding_source.model, embedding_source.inputs))
    package = load_package(out)
    assert package.meta.metric == "fidelity"
    for v in package.variants:
        got = _outputs(v.path, v.meta.entrypoint, embedding_source.inputs).astype(np.float64)
        dist = np.linalg.norm(got - ref, axis=1)
        independent = _share_bp(dist <= 0.02 * np.linalg.norm(ref, axis=1))
        assert v.meta.accuracy_bp == independent, v.id
    assert package.variant("fp32").meta.accuracy_bp == 10_000


def test_without_labels_a_classifier_scores_agreement(conv_source: Source, tmp_path: Path) -> None:
    from runtime.catalog.golden import write_npz

    golden = write_npz(tmp_path / "unlabelled.npz", conv_source.inputs)
    out = tmp_path / "pkg"
    code, stdout, err = cli(
        "models", "build", conv_source.model, "--app", "conv", "--version", "1.0.0",
        "--golden", golden, "--out", out, "--variants", "fp32,int8-dynamic", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["metric"] == "agreement"
    package = load_package(out)
    assert package.meta.quality_metric == "agreement"
    ref_top1 = np.argmax(
        _outputs(conv_source.model.parent, conv_source.model.name, conv_source.inputs), axis=1
    )
    for v in package.variants:
        got = np.argmax(_outputs(v.path, v.meta.entrypoint, conv_source.inputs), axis=1)
        assert v.meta.accuracy_bp == _share_bp(got == ref_top1)
    assert package.variant("fp32").meta.accuracy_bp == 10_000


def test_int8_exclusion_keeps_the_costly_node_in_float(
    outlier_source: Source, tmp_path: Path
) -> None:
    out = tmp_path / "pkg"
    code, stdout, err = cli(
        "models", "build", outlier_source.model, "--app", "outlier", "--version", "1.0.0",
        "--golden", outlier_source.golden, "--out", out, "--variants", "fp32,int8-static",
        "--max-drop-bp", "200", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    # dense1 (16 x 64) kept in float outweighs dense2 (64 x 10) in int8: the file says so,
    # and so does the rung's name
    int8 = next(v for v in report["variants"] if v["variant"] == "int8-static-partial")
    search = int8["details"]["int8_search"]
    reference = report["reference_bp"]
    assert reference - search["before_bp"] > 200  # everything quantized: far too lossy
    assert "dense1" in search["excluded"] and search["stopped"] == "within bounds"
    assert reference - search["after_bp"] <= 200 and int8["accuracy_bp"] == search["after_bp"]
    assert int8["precision"] == "fp32" and 0 < int8["details"]["int8_share"] < 0.5
    ref_top1 = np.argmax(run_onnx(outlier_source.model, outlier_source.inputs), axis=1)
    got = _outputs(out / "variants" / "int8-static-partial", "model.onnx", outlier_source.inputs)
    assert int8["accuracy_bp"] == _share_bp(np.argmax(got, axis=1) == ref_top1)


def test_floor_leaves_variants_out_unless_keep_all(conv_source: Source, tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    args = [
        "models", "build", conv_source.model, "--app", "conv", "--version", "1.0.0",
        "--golden", conv_source.golden, "--variants", "fp32,fp16", "--floor-bp", "10000",
    ]  # fmt: skip
    code, _, err = cli(*args, "--out", out)
    assert code == 1 and "no variant survived" in err and "below the floor 10000 bp" in err
    assert not out.exists() and not list(tmp_path.glob(".staging-*"))
    code, stdout, err = cli(*args, "--out", out, "--keep-all", "--json")
    assert code == 0, err
    assert all(not v["meets_floor"] and v["kept"] for v in json.loads(stdout)["variants"])
    assert {v.id for v in load_package(out).variants} == {"fp32", "fp16"}


def test_add_variant_joins_the_family(
    conv_source: Source, embedding_source: Source, tmp_path: Path
) -> None:
    from tests.support.source_models import conv_classifier

    pruned = conv_classifier(tmp_path / "pruned.onnx", seed=9)
    out = tmp_path / "pkg"
    code, stdout, err = cli(
        "models", "build", conv_source.model, "--app", "conv", "--version", "1.0.0",
        "--golden", conv_source.golden, "--out", out, "--variants", "fp32",
        "--add-variant", f"{pruned}:pruned50-fp32:5000",
        "--add-variant", f"{embedding_source.model}:wrong-inputs", "--json",
    )  # fmt: skip
    assert code == 0, err
    by_id = {v["variant"]: v for v in json.loads(stdout)["variants"]}
    assert by_id["pruned50-fp32"]["ok"] and by_id["pruned50-fp32"]["pruning_bp"] == 5000
    assert (
        not by_id["wrong-inputs"]["ok"]
        and "differ from the source" in by_id["wrong-inputs"]["reason"]
    )
    package = load_package(out)
    v = package.variant("pruned50-fp32")
    got = np.argmax(run_onnx(v.entrypoint, conv_source.inputs), axis=1)
    assert v.meta.accuracy_bp == _share_bp(got == conv_source.labels)
    assert v.meta.pruning_bp == 5000


def test_the_terminal_table_marks_floor_and_pareto(conv_source: Source, tmp_path: Path) -> None:
    code, stdout, err = cli(
        "models", "build", conv_source.model, "--app", "conv", "--version", "1.0.0",
        "--golden", conv_source.golden, "--out", tmp_path / "pkg", "--variants", "fp32,fp16",
        "--floor-bp", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "metric top1" in stdout and "pareto" in stdout
    assert stdout.count("meets") == 2 and "kept: fp32, fp16" in stdout
    assert f"package: {tmp_path / 'pkg'}" in stdout.replace("\n", "")


def test_a_spent_time_budget_still_ships_the_source_variant(
    conv_source: Source, tmp_path: Path
) -> None:
    from runtime.factory import BuildOptions, build

    result = build(
        BuildOptions(
            source=conv_source.model,
            app="conv",
            version="1.0.0",
            golden=conv_source.golden,
            out=tmp_path / "pkg",
            variants=("fp32", "fp16", "int8-static"),
            time_budget_s=0.001,
            latency_samples=20,
        )
    )
    by_id = {v.variant: v for v in result.variants}
    assert by_id["fp32"].ok and by_id["fp32"].kept
    for vid in ("fp16", "int8-static"):
        assert not by_id[vid].ok
        assert by_id[vid].reason == "the time budget was spent before this step"
    assert {v.id for v in load_package(tmp_path / "pkg").variants} == {"fp32"}
