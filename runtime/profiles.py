"""Device profiles: one TOML file per hardware class, and matching a HardwareReport to one.

A profile says how to recognise a class of box (match rules), how to run models on it
(an ordered list of (backend, device) targets, allowed precisions and formats, a memory
budget, thread counts), and why (notes). Adding a hardware class is one TOML file in
device_profiles/ and one fixture tree in tests/fixtures/hosts/; no code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BackendName = Literal["onnx", "openvino", "llama"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchRules(_Strict):
    """Every rule that is set must hold. Lists mean "any of" unless the name says "all"."""

    arch: tuple[str, ...] = ()
    cpu_vendor: tuple[str, ...] = ()
    cpu_flags_all: tuple[str, ...] = ()
    cpu_flags_any: tuple[str, ...] = ()
    gpu_vendor: tuple[str, ...] = ()
    gpu_min_memory_bytes: int | None = Field(default=None, ge=0)
    npu_vendor: tuple[str, ...] = ()
    board_compatible_any: tuple[str, ...] = ()
    board_model_any: tuple[str, ...] = ()
    tegra: bool | None = None
    min_memory_bytes: int | None = Field(default=None, ge=0)
    max_memory_bytes: int | None = Field(default=None, ge=0)
    device_paths_any: tuple[
        str, ...
    ] = ()  # globs relative to the probe root, e.g. /dev/accel/accel*


class Target(_Strict):
    """One (backend, device) pair to try, in order."""

    backend: BackendName
    device: str = Field(pattern=r"^(cpu|gpu|npu|auto)(\.[0-9]+)?$")
    providers: tuple[str, ...] = ()  # onnxruntime execution providers, in order
    note: str = ""


class Threads(_Strict):
    intra_op: int = Field(default=0, ge=0, le=1024, description="0: one per physical core")
    inter_op: int = Field(default=1, ge=0, le=64)
    workers: int = Field(default=1, ge=1, le=64, description="worker threads per model")


class DeviceProfile(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    description: str
    priority: int = Field(ge=0, le=1000, description="higher wins among matching profiles")
    generic_for_arch: str | None = Field(
        default=None, description="the fallback profile for this arch when nothing else matches"
    )
    match: MatchRules = Field(default_factory=MatchRules)
    targets: tuple[Target, ...] = Field(min_length=1)
    precisions: tuple[str, ...] = Field(min_length=1)
    formats: tuple[Literal["onnx", "openvino", "gguf"], ...] = ("onnx", "openvino", "gguf")
    memory_budget_fraction: float = Field(default=0.5, gt=0, le=1)
    memory_source: Literal["ram", "vram"] = "ram"
    threads: Threads = Field(default_factory=Threads)
    notes: tuple[str, ...] = ()
    source: Path | None = Field(default=None, exclude=True, description="the file it came from")
