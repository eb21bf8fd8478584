"""Device profiles: one TOML file per hardware class.

A profile says how to recognise a class of box (match rules), how to run models on it
(an ordered list of (backend, device) targets, allowed precisions and formats, a memory
budget, thread counts), and why (notes). Adding a hardware class is one TOML file in
device_profiles/ and one fixture tree in tests/fixtures/hosts/; no code.

Matching a report to a profile is runtime/profiles/match.py.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from runtime.backend_table import BACKENDS, formats, known_backend, known_format
from runtime.config import describe_validation_error
from runtime.errors import ConfigError

if TYPE_CHECKING:
    from runtime.config import Settings

# A backend in runtime/backend_table.py; a variant format some backend there opens.
BackendName = Annotated[str, AfterValidator(known_backend)]
FormatName = Annotated[str, AfterValidator(known_format)]

# The catalog's precision vocabulary: tensor formats (onnx, openvino) and GGUF types.
PRECISIONS = frozenset(
    {"fp32", "fp16", "bf16", "int8", "int4", "uint8"}
    | {"f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0", "q4_k_m", "q4_k_s"}
    | {"q4_0", "q4_1", "q3_k_m", "q3_k_s", "q2_k", "iq4_xs", "iq4_nl"}
)

SYSTEM_PROFILES_DIR = Path("/usr/share/headframe/device_profiles")
REPO_PROFILES_DIR = Path(__file__).resolve().parents[2] / "device_profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchRules(_Strict):
    """Every rule that is set must hold. Lists mean "any of" unless the name says "all".
    String lists that name boards, device nodes or PCI ids accept shell globs."""

    arch: tuple[str, ...] = ()
    cpu_vendor: tuple[str, ...] = ()
    cpu_flags_all: tuple[str, ...] = ()
    cpu_flags_any: tuple[str, ...] = ()
    gpu_vendor: tuple[str, ...] = ()
    gpu_min_memory_bytes: int | None = Field(default=None, ge=0)
    npu_vendor: tuple[str, ...] = ()  # NPUs and TPUs
    board_compatible_any: tuple[str, ...] = ()  # "rockchip,rk3588*"
    board_model_any: tuple[str, ...] = ()  # "Raspberry Pi *"
    tegra: bool | None = None  # /etc/nv_tegra_release present (Jetson)
    min_memory_bytes: int | None = Field(default=None, ge=0)
    max_memory_bytes: int | None = Field(default=None, ge=0)
    device_paths_any: tuple[str, ...] = ()  # host paths, e.g. "/dev/accel/accel*"
    pci_ids_any: tuple[str, ...] = ()  # "vendor:device" in hex, e.g. "1e60:2864", "10de:*"

    def specificity(self) -> int:
        """How many rules are set: the tie-breaker after priority."""
        return sum(1 for v in self.model_dump().values() if v not in ((), None))


class Target(_Strict):
    """One (backend, device) pair to try, in order."""

    backend: BackendName
    device: str = Field(pattern=r"^(cpu|gpu|npu|auto)(\.[0-9]+)?$")
    providers: tuple[str, ...] = ()  # execution providers in order (a backend that takes them)
    note: str = ""

    @model_validator(mode="after")
    def _pairs_that_exist(self) -> Target:
        # Caught at load time so a profile cannot promise a target no backend can honour.
        row = BACKENDS[self.backend]
        cls = self.device.split(".")[0]
        if cls != "auto" and cls not in row.device_classes:
            runs = " or ".join(row.device_classes)
            raise ValueError(f"the {row.name} backend runs on {runs}, not {cls}")
        if self.providers and not row.providers:
            takes = ", ".join(repr(r.name) for r in BACKENDS.values() if r.providers)
            raise ValueError(f"providers are execution providers: backend {takes} only")
        return self


class Threads(_Strict):
    intra_op: int = Field(
        default=0, ge=0, le=1024,
        description="0: the backend decides (onnx: physical cores less one, for the event loop)",
    )  # fmt: skip
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
    formats: tuple[FormatName, ...] = Field(default_factory=formats)
    memory_budget_fraction: float = Field(default=0.5, gt=0, le=1)
    memory_source: Literal["ram", "vram"] = "ram"
    threads: Threads = Field(default_factory=Threads)
    notes: tuple[str, ...] = ()
    source: Path | None = Field(default=None, exclude=True, description="the file it came from")

    @field_validator("precisions")
    @classmethod
    def _known_precisions(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in v if p not in PRECISIONS]
        if unknown:
            raise ValueError(f"unknown precision {unknown}; known: {sorted(PRECISIONS)}")
        return v


def default_profiles_dir(settings: Settings | None = None) -> Path:
    """settings.paths.profiles_dir, else the profiles beside this copy of the code, else the
    system directory.

    The copy beside the code wins because it is the one this code was tested with: a source
    checkout on a box that also has the .deb installed must not read the package's profiles.
    An installed package has no device_profiles/ beside site-packages, so it reads
    /usr/share/headframe/device_profiles.
    """
    if settings is not None and settings.paths.profiles_dir is not None:
        return settings.paths.profiles_dir
    if REPO_PROFILES_DIR.is_dir():
        return REPO_PROFILES_DIR
    return SYSTEM_PROFILES_DIR


def load_profile(path: Path) -> DeviceProfile:
    """One profile file. Raises ConfigError naming the file and the field."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read profile: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    try:
        return DeviceProfile.model_validate({**data, "source": path})
    except ValidationError as e:
        raise ConfigError(describe_validation_error(e, str(path))) from e


def load_profiles(directory: Path | None = None) -> list[DeviceProfile]:
    """Every *.toml in ``directory`` (default: default_profiles_dir()), sorted by file name."""
    directory = Path(directory) if directory is not None else default_profiles_dir()
    if not directory.is_dir():
        raise ConfigError(f"{directory}: device profiles directory not found")
    profiles = [load_profile(p) for p in sorted(directory.glob("*.toml"))]
    if not profiles:
        raise ConfigError(f"{directory}: no device profiles (*.toml) found")
    seen: dict[str, Path | None] = {}
    for p in profiles:
        if p.name in seen:
            raise ConfigError(f"{p.source}: name: {p.name!r} is also used by {seen[p.name]}")
        seen[p.name] = p.source
    return profiles


def profile_by_name(profiles: list[DeviceProfile], name: str) -> DeviceProfile:
    for p in profiles:
        if p.name == name:
            return p
    known = ", ".join(sorted(p.name for p in profiles))
    raise ConfigError(f"profile: no device profile named {name!r} (known: {known})")
