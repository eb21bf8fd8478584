"""Variant selection on synthetic metadata: what an operator reads in `models select`."""

from __future__ import annotations

import json

from runtime.hardware.report import RuntimeInfo
from runtime.selection import Policy, Resources, resources_for, select
from runtime.units import human_bytes, percent_bp
from tests.support.synthetic import (
    GB,
    MB,
    intel_npu,
    make_package_meta,
    make_profile,
    make_report,
    make_variant,
    nvidia_gpu,
    ort_runtime,
    ov_runtime,
)

PKG = make_package_meta(floor_bp=9000)


def _select(variants, *, profile=None, report=None, memory=8 * GB, policy=None, pkg=PKG):
    profile = profile or make_profile()
    report = report or make_report()
    return select(pkg, variants, profile, report, Resources(memory), policy or Policy())


def _reasons(selection):
    return {r.variant.variant: r.reason for r in selection.rejected}


def test_smallest_qualifying_variant_wins_and_the_rest_are_ranked_by_size():
    variants = [
        make_variant("fp32", 400 * MB),
        make_variant("pruned50", 200 * MB),
        make_variant("int8", 100 * MB, precision="int8", accuracy_bp=9300),
    ]
    sel = _select(variants)
    assert sel.chosen is not None
    assert sel.chosen.variant.variant == "int8"
    assert [c.variant.variant for c in sel.ranked] == ["int8", "pruned50", "fp32"]
    assert sel.rejected == []
    assert (sel.chosen.backend, sel.chosen.device) == ("onnx", "cpu")
    assert "smallest of 3" in sel.chosen.reason


def test_equal_size_goes_to_the_more_accurate_then_the_faster():
    variants = [
        make_variant("a", 100 * MB, accuracy_bp=9400, latency_us=50),
        make_variant("b", 100 * MB, accuracy_bp=9600, latency_us=900),
        make_variant("c", 100 * MB, accuracy_bp=9600, latency_us=300),
    ]
    sel = _select(variants)
    assert [c.variant.variant for c in sel.ranked] == ["c", "b", "a"]


def test_accuracy_below_the_package_floor_is_rejected_with_both_numbers():
    variants = [make_variant("tiny", 10 * MB, accuracy_bp=8712), make_variant("ok", 50 * MB)]
    sel = _select(variants)
    assert sel.chosen.variant.variant == "ok"
    assert _reasons(sel)["tiny"] == "accuracy 87.12% is below the package floor 90.00%"


def test_site_policy_raises_the_floor_and_changes_the_choice():
    variants = [
        make_variant("small", 10 * MB, accuracy_bp=9300),
        make_variant("big", 50 * MB, accuracy_bp=9800),
    ]
    assert _select(variants).chosen.variant.variant == "small"
    sel = _select(variants, policy=Policy(accuracy_floor_bp=9700))
    assert sel.chosen.variant.variant == "big"
    assert sel.accuracy_floor_bp == 9700
    assert _reasons(sel)["small"] == "accuracy 93.00% is below the site policy floor 97.00%"


def test_site_policy_cannot_lower_the_package_floor():
    variants = [make_variant("weak", 10 * MB, accuracy_bp=8000)]
    sel = _select(variants, policy=Policy(accuracy_floor_bp=5000))
    assert sel.chosen is None
    assert sel.accuracy_floor_bp == 9000


def test_unknown_accuracy_is_rejected_when_a_floor_exists_but_not_without_one():
    variants = [make_variant("unmeasured", 10 * MB, accuracy_bp=None)]
    sel = _select(variants)
    assert sel.chosen is None
    assert "accuracy is unknown" in _reasons(sel)["unmeasured"]
    assert "90.00%" in _reasons(sel)["unmeasured"]
    no_floor = _select(variants, pkg=make_package_meta(floor_bp=0))
    assert no_floor.chosen.variant.variant == "unmeasured"


def test_peak_memory_over_the_budget_is_rejected_with_the_numbers():
    variants = [
        make_variant("fp32", 400 * MB, peak_memory_bytes=812 * MB),
        make_variant("int8", 100 * MB, precision="int8", peak_memory_bytes=700 * MB),
        make_variant("pruned", 150 * MB, peak_memory_bytes=300 * MB),
    ]
    sel = _select(variants, memory=1 * GB)
    assert sel.chosen.variant.variant == "pruned"
    assert _reasons(sel)["fp32"] == (
        "peak memory 774 MiB exceeds the budget 477 MiB (50% of 954 MiB RAM)"
    )
    assert sel.budget_bytes == 500 * MB


def test_precision_the_profile_does_not_allow_is_rejected():
    profile = make_profile(precisions=["fp32"])
    variants = [
        make_variant("int8", 10 * MB, precision="int8"),
        make_variant("fp32", 40 * MB),
    ]
    sel = _select(variants, profile=profile)
    assert sel.chosen.variant.variant == "fp32"
    assert _reasons(sel)["int8"] == "precision int8 is not allowed by profile test-cpu (fp32)"


def test_format_without_an_installed_backend_is_rejected_and_says_how_to_install():
    profile = make_profile(
        targets=[{"backend": "llama", "device": "cpu"}, {"backend": "onnx", "device": "cpu"}],
        precisions=["fp32", "q4_k_m"],
    )
    variants = [
        make_variant("q4", 5 * MB, fmt="gguf", precision="q4_k_m"),
        make_variant("onnx", 50 * MB),
    ]
    # An embedding package: both llama.cpp and onnxruntime serve that task.
    embedding = PKG.model_copy(update={"task": "embedding", "schema_version": 2})
    sel = _select(variants, profile=profile, pkg=embedding)
    assert sel.chosen.variant.variant == "onnx"
    reason = _reasons(sel)["q4"]
    assert "llama/cpu: llama_cpp is not installed" in reason
    assert "headframe[llm]" in reason


def test_runtime_present_but_broken_is_reported_with_its_own_reason():
    report = make_report(
        runtimes=[RuntimeInfo("onnxruntime", False, reason="libonnxruntime.so: cannot open")]
    )
    profile = make_profile(targets=[{"backend": "onnx", "device": "cpu"}])
    sel = _select([make_variant("m", 10 * MB)], report=report, profile=profile)
    assert sel.chosen is None
    assert "onnxruntime is not usable: libonnxruntime.so: cannot open" in _reasons(sel)["m"]


def test_openvino_ir_needs_the_openvino_backend():
    report = make_report(runtimes=[ort_runtime()])
    variants = [make_variant("ir", 5 * MB, fmt="openvino"), make_variant("onnx", 50 * MB)]
    sel = _select(variants, report=report)
    assert sel.chosen.variant.variant == "onnx"
    assert "openvino/cpu: openvino is not installed" in _reasons(sel)["ir"]


def test_onnx_variant_can_fall_back_to_openvino_when_onnxruntime_is_missing():
    report = make_report(runtimes=[ov_runtime()])
    sel = _select([make_variant("m", 10 * MB)], report=report)
    assert sel.chosen is not None
    assert [(t.backend, t.device) for t in sel.chosen.targets] == [("openvino", "cpu")]


def test_gpu_target_needs_a_gpu_in_the_box_and_a_provider_that_drives_it():
    profile = make_profile(
        name="test-gpu",
        targets=[
            {
                "backend": "onnx",
                "device": "gpu",
                "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
            }
        ],
    )
    variants = [make_variant("m", 10 * MB)]
    no_gpu = _select(variants, profile=profile)
    assert no_gpu.chosen is None
    assert _reasons(no_gpu)["m"] == "no backend can run it here (onnx/gpu: no GPU in this box)"

    gpu_no_cuda = _select(
        variants, profile=profile, report=make_report(accelerators=[nvidia_gpu()])
    )
    assert gpu_no_cuda.chosen is None
    assert (
        "onnxruntime offers no GPU provider (CUDAExecutionProvider; it has CPUExecutionProvider)"
        in (_reasons(gpu_no_cuda)["m"])
    )

    ok = _select(
        variants,
        profile=profile,
        report=make_report(
            accelerators=[nvidia_gpu()],
            runtimes=[ort_runtime("CUDAExecutionProvider", "CPUExecutionProvider")],
        ),
    )
    assert (ok.chosen.backend, ok.chosen.device) == ("onnx", "gpu")


def test_npu_target_is_skipped_without_an_npu_and_the_cpu_target_takes_over():
    profile = make_profile(
        name="test-npu",
        targets=[
            {"backend": "openvino", "device": "npu"},
            {"backend": "openvino", "device": "cpu"},
        ],
    )
    variants = [make_variant("ir", 10 * MB, fmt="openvino")]
    sel = _select(variants, profile=profile)
    assert [(t.backend, t.device) for t in sel.chosen.targets] == [("openvino", "cpu")]
    # The operator learns why the NPU was passed over.
    assert sel.chosen.reason.endswith("; skipped openvino/npu: no NPU in this box")

    report = make_report(accelerators=[intel_npu()], runtimes=[ov_runtime("CPU", "NPU")])
    sel = _select(variants, profile=profile, report=report)
    assert [(t.backend, t.device) for t in sel.chosen.targets] == [
        ("openvino", "npu"),
        ("openvino", "cpu"),
    ]


def test_variant_not_built_for_the_device_class():
    profile = make_profile(targets=[{"backend": "openvino", "device": "npu"}])
    report = make_report(accelerators=[intel_npu()], runtimes=[ov_runtime("CPU", "NPU")])
    variants = [make_variant("cpu-only", 10 * MB, fmt="openvino", device_classes=["cpu"])]
    sel = _select(variants, profile=profile, report=report)
    assert sel.chosen is None
    assert "the variant is not built for npu (it runs on cpu)" in _reasons(sel)["cpu-only"]


def test_format_not_allowed_by_the_profile():
    profile = make_profile(formats=["onnx"])
    variants = [make_variant("ir", 10 * MB, fmt="openvino"), make_variant("m", 20 * MB)]
    sel = _select(variants, profile=profile)
    assert sel.chosen.variant.variant == "m"
    assert _reasons(sel)["ir"] == "format openvino is not allowed by profile test-cpu (onnx)"


def test_every_failing_check_is_named_in_one_reason():
    profile = make_profile(precisions=["fp32"])
    variants = [make_variant("bad", 900 * MB, precision="int8", accuracy_bp=5000)]
    sel = _select(variants, profile=profile, memory=1 * GB)
    reason = _reasons(sel)["bad"]
    assert "precision int8" in reason and "peak memory" in reason and "accuracy 50.00%" in reason


def test_pin_to_a_qualifying_variant_keeps_only_that_one():
    variants = [make_variant("small", 10 * MB), make_variant("big", 50 * MB)]
    sel = _select(variants, policy=Policy(pin="big"))
    assert sel.chosen.variant.variant == "big"
    assert [c.variant.variant for c in sel.ranked] == ["big"]
    assert _reasons(sel)["small"] == "qualifies, but site policy pins big"
    assert "pinned by site policy" in sel.reason


def test_pin_to_a_rejected_variant_chooses_nothing_and_says_why():
    variants = [make_variant("small", 10 * MB), make_variant("weak", 5 * MB, accuracy_bp=100)]
    sel = _select(variants, policy=Policy(pin="weak"))
    assert sel.chosen is None
    assert (
        sel.reason
        == "the pinned variant weak is rejected: accuracy 1.00% is below the package floor 90.00%"
    )
    assert _reasons(sel)["small"] == "qualifies, but site policy pins weak"


def test_pin_to_an_unknown_variant_chooses_nothing_and_lists_the_known_ones():
    sel = _select([make_variant("small", 10 * MB)], policy=Policy(pin="nope"))
    assert sel.chosen is None
    assert sel.reason == "the pinned variant nope is not in this package (small)"


def test_nothing_qualifies_gives_a_summary_and_every_reason():
    variants = [
        make_variant("a", 10 * MB, accuracy_bp=10),
        make_variant("b", 20 * MB, accuracy_bp=20),
    ]
    sel = _select(variants)
    assert sel.chosen is None and sel.ranked == []
    assert sel.reason == "none of the 2 variants qualifies on profile test-cpu"
    assert len(sel.rejected) == 2


def test_to_dict_is_the_json_models_select_prints():
    variants = [
        make_variant("int8", 10 * MB, precision="int8", accuracy_bp=9400),
        make_variant("huge", 900 * MB, peak_memory_bytes=5 * GB),
    ]
    data = json.loads(json.dumps(_select(variants, memory=2 * GB).to_dict()))
    assert {k: data["chosen"][k] for k in ("variant", "format", "precision", "bytes")} == {
        "variant": "int8",
        "format": "onnx",
        "precision": "int8",
        "bytes": 10 * MB,
    }
    assert data["chosen"]["accuracy_bp"] == 9400
    assert (data["chosen"]["backend"], data["chosen"]["device"]) == ("onnx", "cpu")
    assert data["rejected"] == [
        {
            "variant": "huge",
            "bytes": 900 * MB,
            "reason": "peak memory 4.7 GiB exceeds the budget 954 MiB (50% of 1.9 GiB RAM)",
        }
    ]
    assert [r["variant"] for r in data["ranked"]] == ["int8"]


def test_resources_come_from_ram_vram_or_the_override():
    report = make_report(ram=16 * GB, accelerators=[nvidia_gpu(24 * GB)])
    assert resources_for(make_profile(), report) == Resources(16 * GB, "RAM")
    vram_profile = make_profile(memory_source="vram")
    assert resources_for(vram_profile, report) == Resources(24 * GB, "VRAM")
    no_gpu = resources_for(vram_profile, make_report(ram=4 * GB))
    assert no_gpu.memory_bytes == 4 * GB and "no GPU memory" in no_gpu.source
    assert resources_for(make_profile(), report, 512 * MB) == Resources(512 * MB, "--memory-bytes")


def test_human_bytes_reads_naturally_in_binary_units():
    sizes = (512, 2_560, 81 * 2**10, 812 * 2**20, 2**30, 24 * 2**30)
    assert [human_bytes(n) for n in sizes] == [
        "512 B",
        "2.5 KiB",
        "81 KiB",
        "812 MiB",
        "1.0 GiB",
        "24 GiB",
    ]


def test_basis_points_read_as_one_percent_style() -> None:
    assert percent_bp(9512) == "95.12%"
    assert percent_bp(None) == "-" and percent_bp(None, "unmeasured") == "unmeasured"
    assert percent_bp(5000, digits=0) == "50%"  # `models show`'s pruning column


def test_a_target_that_cannot_serve_the_packages_task_is_skipped_with_a_reason():
    """Issue 25, item 9: OpenVINO opens ONNX files but has no tokenizer path, so an ONNX
    embedding package on an OpenVINO-first profile goes to onnxruntime, and says why."""
    embedding = PKG.model_copy(update={"task": "embedding", "schema_version": 2})
    profile = make_profile(
        targets=[{"backend": "openvino", "device": "cpu"}, {"backend": "onnx", "device": "cpu"}]
    )
    report = make_report(runtimes=[ort_runtime(), ov_runtime()])
    variants = [make_variant("m", 10 * MB)]
    sel = _select(variants, profile=profile, report=report, pkg=embedding)
    assert [(t.backend, t.device) for t in sel.chosen.targets] == [("onnx", "cpu")]
    assert sel.chosen.reason.endswith(
        "; skipped openvino/cpu: openvino cannot serve embedding packages (it serves tensor)"
    )
    # A tensor package of the same file still goes to OpenVINO first.
    sel = _select(variants, profile=profile, report=report)
    assert sel.chosen.backend == "openvino"
    # With onnxruntime missing, nothing can serve it here: rejected, naming both reasons.
    sel = _select(variants, profile=profile, report=make_report(runtimes=[ov_runtime()]),
                  pkg=embedding)  # fmt: skip
    assert sel.chosen is None
    assert _reasons(sel)["m"] == (
        "no backend can run it here (openvino/cpu: openvino cannot serve embedding packages "
        "(it serves tensor); onnx/cpu: onnxruntime is not installed "
        "(pip install 'headframe[onnx]'))"
    )
