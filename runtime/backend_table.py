"""The backend table: one row per inference backend, holding every fact about it that a
room other than the backend's own file needs.

A backend is its file in runtime/backends/ (the ``Backend`` class and its pure
``device_problem(target, variant, report)`` rule) plus one row here. Nothing else names
a backend: selection, the catalog (package metadata, ``models add``, the package writer's
memory estimate), device profiles, the runtime probe and KServe's model metadata all
read this table.

Why a foundation module and not runtime/backends/: the catalog (tier 2), the hardware
probe (tier 1) and the device profiles (tier 3) sit below backends/ and must not import
it, yet they need these facts (which formats exist, which runtime to look for, what a
loaded variant costs). A pure data module at the foundation is the one place low enough
for all of them. It imports nothing of runtime and no inference runtime: a row names its
backend's module and class as strings (runtime/backends/registry.py imports them only
when a backend is created or its device rule is asked), and its ``offers`` callable
reads a runtime module that the probe has already imported.

Row order matters in one way: the first row that opens a format is that format's
reference backend, whose ``bare_file_devices`` and memory estimate go into the metadata
of a package made from a bare file (``models add``, ``models build``, the demo), because
package metadata is written before anyone knows which backend a box will use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# What a runtime says about itself once imported: (version, devices it offers, a note
# such as "CPU only" or None).
Offers = Callable[[Any], tuple[str | None, tuple[str, ...], str | None]]

MiB = 1 << 20


@dataclass(frozen=True)
class BackendRow:
    """Everything about one backend that is not its code."""

    name: str  # the profiles' target.backend, BackendInfo.backend
    module: str  # its file, imported only when needed
    cls: str  # the Backend class in that module
    runtime: str  # the runtime's Python package: what the probe imports, RuntimeInfo.name
    distributions: tuple[str, ...]  # the dists that may install it (version without import)
    extra: str  # the pip extra that installs the runtime: headframe[<extra>]
    platform: str  # the KServe model metadata "platform"
    formats: tuple[str, ...]  # the variant formats it opens
    device_classes: tuple[str, ...]  # the device classes it can drive
    # The device classes a bare file of its own format is marked for when wrapped into a
    # package (``models add``): where a plain export is known to run, which can be
    # narrower than ``device_classes`` (an NPU provider wants a model made for it).
    bare_file_devices: tuple[str, ...]
    # Rough resident cost of a loaded variant: the runtime before any weights, plus how
    # many copies of the weights it holds while loading.
    base_bytes: int
    weight_copies: int
    offers: Offers  # given the imported runtime module: version, devices, note
    providers: bool = False  # takes a profile target's ``providers`` list
    # The package tasks (catalog's ``task``) it can serve. Opening a format is not enough:
    # an embedding package needs text in (a tokenizer path), which OpenVINO lacks.
    tasks: tuple[str, ...] = ("tensor",)

    def install_hint(self) -> str:
        return f"pip install 'headframe[{self.extra}]'"


def _onnxruntime_offers(ort: Any) -> tuple[str | None, tuple[str, ...], str | None]:
    return str(ort.__version__), tuple(ort.get_available_providers()), None


def _openvino_offers(ov: Any) -> tuple[str | None, tuple[str, ...], str | None]:
    version = getattr(ov, "__version__", None) or str(ov.get_version())
    return version, tuple(str(d) for d in ov.Core().available_devices), None


def _llama_cpp_offers(llama: Any) -> tuple[str | None, tuple[str, ...], str | None]:
    if llama.llama_supports_gpu_offload():
        return str(llama.__version__), ("cpu", "gpu"), None
    return str(llama.__version__), ("cpu",), "built without GPU offload: CPU only"


BACKENDS: dict[str, BackendRow] = {
    row.name: row
    for row in (
        # onnxruntime reads the file, parses it and pre-packs the matrices: three copies.
        BackendRow(
            name="onnx", module="runtime.backends.onnx", cls="OnnxBackend",
            runtime="onnxruntime",
            distributions=("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino",
                           "onnxruntime-directml", "onnxruntime-qnn", "onnxruntime-training"),
            extra="onnx", platform="onnxruntime_onnx", formats=("onnx",),
            device_classes=("cpu", "gpu", "npu"), bare_file_devices=("cpu", "gpu"),
            base_bytes=16 * MiB, weight_copies=3,
            offers=_onnxruntime_offers, providers=True,
            tasks=("tensor", "embedding"),  # embedding: its sentence encoder + tokenizer.json
        ),
        # OpenVINO reads its own IR and ONNX files directly; it reads and compiles: two.
        BackendRow(
            name="openvino", module="runtime.backends.openvino", cls="OpenVinoBackend",
            runtime="openvino", distributions=("openvino",), extra="openvino",
            platform="openvino_ir", formats=("openvino", "onnx"),
            device_classes=("cpu", "gpu", "npu"), bare_file_devices=("cpu", "gpu", "npu"),
            base_bytes=32 * MiB, weight_copies=2,
            offers=_openvino_offers,
            tasks=("tensor",),  # no tokenizer path: an ONNX encoder would take ids, not text
        ),
        # llama.cpp maps the file: one.
        BackendRow(
            name="llama", module="runtime.backends.llama", cls="LlamaBackend",
            runtime="llama_cpp", distributions=("llama-cpp-python",), extra="llm",
            platform="llama_cpp_gguf", formats=("gguf",), device_classes=("cpu", "gpu"),
            bare_file_devices=("cpu", "gpu"), base_bytes=8 * MiB, weight_copies=1,
            offers=_llama_cpp_offers,
            tasks=("text", "embedding"),
        ),
    )
}  # fmt: skip


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def formats() -> tuple[str, ...]:
    """Every variant format some backend opens, in table order."""
    return tuple(dict.fromkeys(f for row in BACKENDS.values() for f in row.formats))


def runtimes() -> tuple[str, ...]:
    """Every runtime package a backend needs, in table order, each once."""
    return tuple(dict.fromkeys(row.runtime for row in BACKENDS.values()))


def known_format(fmt: str) -> str:
    """``fmt`` when some backend opens it; ValueError naming the known ones otherwise (a
    validator for the catalog's and the profiles' format fields)."""
    if fmt not in formats():
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(formats())}")
    return fmt


def known_backend(name: str) -> str:
    """``name`` when the table has it; ValueError naming the known ones otherwise."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return name


def runtime_row(runtime: str) -> BackendRow:
    """The first row whose backend runs on ``runtime`` (its install hint, distributions,
    offers). KeyError when no backend uses it."""
    for row in BACKENDS.values():
        if row.runtime == runtime:
            return row
    raise KeyError(runtime)


def task_problem(backend: str, task: str) -> str | None:
    """Why ``backend`` cannot serve a package whose task is ``task``, or None when it can
    (selection skips such a target with this reason; the loader never tries one)."""
    row = BACKENDS[backend]
    if task in row.tasks:
        return None
    return f"{backend} cannot serve {task} packages (it serves {', '.join(row.tasks)})"


def platform_of(backend: str) -> str:
    """KServe's model metadata "platform" for ``backend`` (the name itself if unknown)."""
    row = BACKENDS.get(backend)
    return row.platform if row else backend


def reference_row(fmt: str) -> BackendRow:
    """The format's reference backend: the first row that opens ``fmt`` (see the module
    docstring). KeyError when no backend opens it."""
    for row in BACKENDS.values():
        if fmt in row.formats:
            return row
    raise KeyError(fmt)


def estimate_peak_memory(fmt: str, n_bytes: int, extra_bytes: int = 0) -> int:
    """Estimated peak resident bytes of a loaded variant of format ``fmt`` with
    ``n_bytes`` of weights: its reference backend's base + weight copies + ``extra_bytes``
    (activations, a KV cache)."""
    row = reference_row(fmt)
    return row.base_bytes + row.weight_copies * n_bytes + extra_bytes
