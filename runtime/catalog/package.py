"""Model packages, their variants, and the local store index.

A model package is one version of one application model with several variants::

    <store>/<app>/<version>/package.toml
    <store>/<app>/<version>/golden.npz                (the golden set, optional)
    <store>/<app>/<version>/variants/<id>/variant.toml
    <store>/<app>/<version>/variants/<id>/<files...>
    <store>/<app>/active.json                         (which version serves; written by fleet/)

Numbers that travel in signed metadata are integers: basis points, bytes, microseconds.
Every file is validated on load; an invalid one raises MetadataError naming the file
and the field. ``json_schema()`` emits the JSON Schema of both files. Nothing here
loads a model.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from runtime.backend_table import formats, known_format
from runtime.catalog.image_contract import ImageInput, mismatch
from runtime.errors import MetadataError

# The newest package.toml schema this box reads. A writer emits the oldest schema that can
# hold what a package uses (``required_schema_version``), so boxes already deployed, which
# read only schema 1, keep accepting every package that needs no newer field.
SCHEMA_VERSION = 2
# Top-level package.toml fields that schema 2 introduced. A feature that adds a field to
# PackageMeta names it here; a package that sets one must declare schema_version = 2.
SCHEMA_2_FIELDS: frozenset[str] = frozenset(
    {"images", "labels", "embedding_truncation", "quality_metric"}
)
# Task values that schema 2 introduced: a schema-1 reader would refuse them.
SCHEMA_2_TASKS: frozenset[str] = frozenset({"embedding"})
NAME_RE = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# Written by runtime/fleet/install.py into a version directory it stages: such a version
# serves only when ``<app>/active.json`` names it (see Store.active_version).
FLEET_STAGED_MARKER = ".fleet-staged"
VERSION_RE = r"^[0-9]+(\.[0-9]+){0,2}([.+-][0-9A-Za-z.-]+)?$"
# A variant format: one that some backend in runtime/backend_table.py opens.
Format = Annotated[
    str,
    AfterValidator(known_format),
    WithJsonSchema({"enum": list(formats()), "title": "Format", "type": "string"}),
]
Task = Literal["tensor", "text", "embedding"]
# How ``accuracy_bp`` was measured on the golden set (docs/model-package.md "Quality"):
# top1 against labels, agreement with / fidelity to the source model's reference
# outputs, token_agreement of next-token argmaxes for text. Absent means top1.
QualityMetric = Literal["top1", "agreement", "fidelity", "token_agreement"]
DeviceClass = Literal["cpu", "gpu", "npu"]
# KServe v2 datatype names, the one vocabulary of tensor types across the project.
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One named input or output; -1 in ``shape`` means any size (the batch axis, usually)."""

    name: str = Field(min_length=1, max_length=128)
    datatype: Datatype
    shape: tuple[int, ...]

    @field_validator("shape")
    @classmethod
    def _dims(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < -1 or d == 0 for d in v):
            raise ValueError("dimensions are positive integers or -1 for any size")
        return v


class Lineage(_Strict):
    """Where the weights came from: foundation -> sector fine-tune -> application fine-tune."""

    foundation: str
    sector: str
    application: str


class GoldenSet(_Strict):
    """Labelled inputs shipped with the package, for the accuracy and latency trial.

    ``file`` is an .npz relative to the package directory holding one array per input
    name and an integer ``labels`` array; accuracy is argmax of the first output.
    """

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    samples: int = Field(ge=1)

    @field_validator("file")
    @classmethod
    def _inside(cls, v: str) -> str:
        if v.startswith("/") or ".." in Path(v).parts:
            raise ValueError("the golden file path is relative and stays inside the package")
        return v


class PackageMeta(_Strict):
    schema_version: int = Field(default=1, ge=1, le=SCHEMA_VERSION)
    application: str = Field(pattern=NAME_RE)
    version: str = Field(pattern=VERSION_RE)
    task: Task
    description: str = ""
    lineage: Lineage
    accuracy_floor_bp: int = Field(ge=0, le=10_000, description="minimum golden-set accuracy")
    latency_budget_us: int | None = Field(
        default=None, ge=1, description="p95 single-request latency allowed at trial on the box"
    )
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    golden: GoldenSet | None = None
    images: dict[str, ImageInput] | None = Field(
        default=None, description="per input name: how a JPEG/PNG becomes that input's tensor"
    )
    labels: dict[str, tuple[str, ...]] | None = Field(
        default=None, description="per output name: the class names along its last axis"
    )

    @model_validator(mode="after")
    def _images_and_labels_fit(self) -> PackageMeta:
        inputs = {s.name: s for s in self.inputs}
        for name, contract in (self.images or {}).items():
            spec = inputs.get(name)
            if spec is None:
                if inputs:
                    raise ValueError(f"images.{name}: the package has no input {name!r}")
                continue  # the model describes its inputs at load; checked there
            problem = mismatch(name, contract, spec.datatype, spec.shape)
            if problem:
                raise ValueError(problem)
        outputs = {s.name: s for s in self.outputs}
        for name, names in (self.labels or {}).items():
            out = outputs.get(name)
            if out is None and outputs:
                raise ValueError(f"labels.{name}: the package has no output {name!r}")
            if out is not None and out.shape and out.shape[-1] not in (-1, len(names)):
                raise ValueError(
                    f"labels.{name}: {len(names)} names, but output {name!r} has "
                    f"{out.shape[-1]} classes ({list(out.shape)})"
                )
        return self

    embedding_truncation: bool | None = Field(
        default=None,
        description="embedding models: vectors may be cut to fewer dimensions (Matryoshka)",
    )
    quality_metric: QualityMetric | None = Field(
        default=None,
        description="how accuracy_bp and the floor are measured on the golden set; absent: top1",
    )

    @property
    def metric(self) -> QualityMetric:
        """The quality metric in force: the declared one, else top1 (schema 1 packages)."""
        return self.quality_metric or "top1"

    @model_validator(mode="after")
    def _fields_match_schema(self) -> PackageMeta:
        needed = required_schema_version(self)
        if self.schema_version < needed:
            used = sorted(f for f in SCHEMA_2_FIELDS if getattr(self, f, None) is not None)
            if self.task in SCHEMA_2_TASKS:
                used.append(f"task = {self.task!r}")
            raise ValueError(
                f"{', '.join(used)} need schema_version = {needed}, "
                f"the file says {self.schema_version}"
            )
        return self


def required_schema_version(meta: BaseModel) -> int:
    """The oldest schema that holds every field ``meta`` sets (None means unset) and its
    task (a schema-2 task such as "embedding")."""
    uses_2 = any(getattr(meta, f, None) not in (None, (), {}) for f in SCHEMA_2_FIELDS)
    return 2 if uses_2 or getattr(meta, "task", None) in SCHEMA_2_TASKS else 1


class FileEntry(_Strict):
    path: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)

    @field_validator("path")
    @classmethod
    def _relative(cls, v: str) -> str:
        if v.startswith("/") or ".." in Path(v).parts:
            raise ValueError("file paths are relative and stay inside the variant directory")
        return v


class VariantMeta(_Strict):
    variant: str = Field(pattern=NAME_RE)
    format: Format
    precision: str = Field(pattern=r"^[a-z0-9_]{2,16}$", description="fp32, fp16, int8, q4_k_m")
    pruning_bp: int = Field(default=0, ge=0, lt=10_000, description="share of width removed")
    entrypoint: str = Field(description="the file the backend opens (.onnx, .xml, .gguf)")
    files: tuple[FileEntry, ...] = Field(min_length=1)
    bytes: int = Field(ge=0, description="bytes on disk, all files")
    peak_memory_bytes: int = Field(ge=0, description="estimated resident memory when loaded")
    device_classes: tuple[DeviceClass, ...] = ("cpu",)
    accuracy_bp: int | None = Field(default=None, ge=0, le=10_000)
    latency_us: int | None = Field(default=None, ge=0, description="on the reference CPU")
    reference_cpu: str | None = None

    @field_validator("entrypoint")
    @classmethod
    def _entry_relative(cls, v: str) -> str:
        return FileEntry._relative(v)


@dataclass(frozen=True)
class Variant:
    """A variant as found in the store: its metadata and its directory."""

    meta: VariantMeta
    path: Path

    @property
    def id(self) -> str:
        return self.meta.variant

    @property
    def entrypoint(self) -> Path:
        return self.path / self.meta.entrypoint

    def file_problems(self) -> list[str]:
        """What is wrong with this variant's files on disk, found cheaply (stat, no
        digests; the loader checks those): each listed file must be a regular file of
        the size variant.toml records. Empty when all is well."""
        return [p.text for p in file_problems(self.path, self.meta.files)]


@dataclass(frozen=True)
class FileProblem:
    """One listed file that is not as variant.toml records it: ``files.<index>.<field>``
    is the entry at fault ("path": missing or not a regular file; "size"; "sha256")."""

    index: int
    field: Literal["path", "size", "sha256"]
    text: str  # "model.onnx is 100 bytes, variant.toml says 2048"


# A file's sha256, given its path and its stat (a caller may cache by size and mtime).
Digest = Callable[[Path, os.stat_result], str]


def file_problems(
    root: Path, files: Sequence[FileEntry], digest: Digest | None = None
) -> list[FileProblem]:
    """The one check of a variant's files against its metadata, for the store listing
    (stat only), the package writer and the loader (``digest`` given: sha256 too). Each
    listed file under ``root`` must be a regular file of its recorded size, and of its
    recorded sha256 when ``digest`` is given (hashed only once its size is right)."""
    problems = []
    for i, entry in enumerate(files):
        path = root / entry.path
        try:
            st = path.stat()
        except OSError:
            problems.append(FileProblem(i, "path", f"{entry.path} is missing"))
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(FileProblem(i, "path", f"{entry.path} is not a regular file"))
        elif st.st_size != entry.size:
            text = f"{entry.path} is {st.st_size} bytes, variant.toml says {entry.size}"
            problems.append(FileProblem(i, "size", text))
        elif digest is not None and (got := digest(path, st)) != entry.sha256:
            text = (
                f"{entry.path}: sha256 {got[:16]}... does not match variant.toml "
                f"({entry.sha256[:16]}...)"
            )
            problems.append(FileProblem(i, "sha256", text))
    return problems


@dataclass(frozen=True)
class ModelPackage:
    """One version of one application, with every variant it ships."""

    meta: PackageMeta
    path: Path
    variants: tuple[Variant, ...]

    @property
    def application(self) -> str:
        return self.meta.application

    @property
    def version(self) -> str:
        return self.meta.version

    def variant(self, variant_id: str) -> Variant:
        for v in self.variants:
            if v.id == variant_id:
                return v
        known = ", ".join(v.id for v in self.variants)
        raise KeyError(f"{self.application} {self.version} has no variant {variant_id!r} ({known})")


def _format_validation(path: Path, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return f"{path}: " + "; ".join(parts)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise MetadataError(f"{path}: file not found") from e
    except tomllib.TOMLDecodeError as e:
        raise MetadataError(f"{path}: not valid TOML: {e}") from e


def read_package_meta(path: Path) -> PackageMeta:
    try:
        return PackageMeta.model_validate(_read_toml(path))
    except ValidationError as e:
        raise MetadataError(_format_validation(path, e)) from e


def read_variant_meta(path: Path) -> VariantMeta:
    try:
        return VariantMeta.model_validate(_read_toml(path))
    except ValidationError as e:
        raise MetadataError(_format_validation(path, e)) from e


def load_package(package_dir: Path) -> ModelPackage:
    """Read and validate ``package.toml`` and every ``variants/*/variant.toml`` in a dir."""
    package_dir = Path(package_dir)
    meta = read_package_meta(package_dir / "package.toml")
    variants = []
    vroot = package_dir / "variants"
    for vdir in sorted(p for p in vroot.iterdir() if p.is_dir()) if vroot.is_dir() else []:
        vmeta = read_variant_meta(vdir / "variant.toml")
        if vmeta.variant != vdir.name:
            raise MetadataError(
                f"{vdir / 'variant.toml'}: variant: {vmeta.variant!r} does not match "
                f"its directory name {vdir.name!r}"
            )
        variants.append(Variant(vmeta, vdir))
    if not variants:
        raise MetadataError(f"{package_dir}: package has no variants under variants/")
    return ModelPackage(meta, package_dir, tuple(variants))


def json_schema() -> dict[str, Any]:
    """The JSON Schema of package.toml and variant.toml, for tooling and docs."""
    return {
        "package.toml": PackageMeta.model_json_schema(),
        "variant.toml": VariantMeta.model_json_schema(),
    }
