"""Metadata built in code for decision tests: reports, profiles, variants.

Selection is pure, so its tests feed it these directly. Until the probe and the profile
files exist for a case, a HardwareReport built here stands in for a box we do not have.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from runtime.catalog import PackageMeta, VariantMeta
from runtime.hardware.report import (
    Accelerator,
    CpuInfo,
    HardwareReport,
    MemoryInfo,
    RuntimeInfo,
)
from runtime.profiles import DeviceProfile

GB = 1_000_000_000
MB = 1_000_000


def ort_runtime(*providers: str) -> RuntimeInfo:
    return RuntimeInfo("onnxruntime", True, "1.20", providers or ("CPUExecutionProvider",))


def ov_runtime(*devices: str) -> RuntimeInfo:
    return RuntimeInfo("openvino", True, "2024.4", devices or ("CPU",))


def make_report(
    *,
    ram: int = 8 * GB,
    runtimes: Sequence[RuntimeInfo] | None = None,
    accelerators: Sequence[Accelerator] = (),
) -> HardwareReport:
    """An x86 box with ``ram`` bytes and, by default, onnxruntime and OpenVINO on CPU."""
    return HardwareReport(
        cpu=CpuInfo("x86_64", "Test CPU", "intel", 4, ("avx2", "sse4_2")),
        memory=MemoryInfo(ram, ram),
        accelerators=tuple(accelerators),
        runtimes=tuple(runtimes if runtimes is not None else (ort_runtime(), ov_runtime())),
    )


def nvidia_gpu(memory: int = 16 * GB) -> Accelerator:
    return Accelerator("gpu", "nvidia", "Test GPU", memory, ("/dev/nvidia0",))


def intel_npu() -> Accelerator:
    return Accelerator("npu", "intel", "Intel NPU", None, ("/dev/accel/accel0",))


def make_profile(**overrides: Any) -> DeviceProfile:
    """A CPU profile trying onnx then openvino; keyword arguments replace any field."""
    data: dict[str, Any] = {
        "name": "test-cpu",
        "description": "test",
        "priority": 10,
        "targets": [{"backend": "onnx", "device": "cpu"}, {"backend": "openvino", "device": "cpu"}],
        "precisions": ["fp32", "fp16", "int8"],
        "memory_budget_fraction": 0.5,
    }
    data.update(overrides)
    return DeviceProfile.model_validate(data)


def make_variant(
    variant: str,
    nbytes: int,
    *,
    fmt: str = "onnx",
    precision: str = "fp32",
    accuracy_bp: int | None = 9500,
    latency_us: int | None = None,
    peak_memory_bytes: int | None = None,
    device_classes: Sequence[str] = ("cpu", "gpu", "npu"),
) -> VariantMeta:
    entry = {"onnx": "model.onnx", "openvino": "model.xml", "gguf": "model.gguf"}[fmt]
    return VariantMeta.model_validate(
        {
            "variant": variant,
            "format": fmt,
            "precision": precision,
            "entrypoint": entry,
            "files": [
                {
                    "path": entry,
                    "sha256": hashlib.sha256(variant.encode()).hexdigest(),
                    "size": nbytes,
                }
            ],
            "bytes": nbytes,
            "peak_memory_bytes": peak_memory_bytes if peak_memory_bytes is not None else 2 * nbytes,
            "device_classes": list(device_classes),
            "accuracy_bp": accuracy_bp,
            "latency_us": latency_us,
        }
    )


def make_package_meta(floor_bp: int = 9000, app: str = "part-id-reader") -> PackageMeta:
    return PackageMeta.model_validate(
        {
            "application": app,
            "version": "1.0.0",
            "task": "tensor",
            "lineage": {"foundation": "f", "sector": "s", "application": "a"},
            "accuracy_floor_bp": floor_bp,
        }
    )


def installed_runtimes() -> tuple[RuntimeInfo, ...]:
    """The runtimes really installed here, with the devices they really offer."""
    import onnxruntime
    import openvino

    return (
        RuntimeInfo(
            "onnxruntime",
            True,
            onnxruntime.__version__,
            tuple(onnxruntime.get_available_providers()),
        ),
        RuntimeInfo(
            "openvino", True, openvino.__version__, tuple(openvino.Core().available_devices)
        ),
    )


def local_report(ram: int = 8 * GB, accelerators: Sequence[Accelerator] = ()) -> HardwareReport:
    """This machine's runtimes on a box with ``ram`` bytes: what the loader really can use."""
    return make_report(ram=ram, runtimes=installed_runtimes(), accelerators=accelerators)
