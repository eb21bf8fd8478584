"""The OpenVINO backend: IR (.xml + .bin) or ONNX variants on NPU, GPU, CPU or AUTO.

The device comes from the profile's target ("npu" -> "NPU", "gpu.1" -> "GPU.1");
compiled blobs go to ``<cache_dir>/openvino`` (OpenVINO's CACHE_DIR) so the second start
skips compilation, which on an NPU or GPU takes seconds. The performance hint (LATENCY
or THROUGHPUT) comes from LoadOptions. The runtime is imported in ``load`` only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from runtime.backends.base import (
    BackendInfo,
    GenerationChunk,
    GenerationRequest,
    IOSchema,
    LoadOptions,
)
from runtime.catalog import Datatype, TensorSpec, Variant
from runtime.errors import BackendLoadError, BackendUnavailable, InferenceFailed, InvalidInput
from runtime.tensors import to_kserve_datatype

if TYPE_CHECKING:
    from runtime.catalog import VariantMeta
    from runtime.hardware.report import HardwareReport
    from runtime.profiles import Target

log = logging.getLogger(__name__)


def ov_device(device: str) -> str:
    """The OpenVINO device name for a profile device: "npu" -> "NPU", "gpu.1" -> "GPU.1"."""
    return device.upper()


def device_problem(target: Target, variant: VariantMeta, report: HardwareReport) -> str | None:
    """Why OpenVINO cannot drive ``target``'s device here, or None: the device (or its
    class: "GPU" matches "GPU.0") is not among those the probe saw. Pure. Without a device
    list (the runtime found by presence alone) nothing is ruled out: every OpenVINO wheel
    ships its CPU plugin, and a GPU or NPU target's list is always asked for."""
    info = report.runtime("openvino")
    offered = info.devices if info else ()
    if target.device == "auto" or not offered:
        return None
    want = ov_device(target.device)
    if not any(d.upper() == want or d.upper().split(".")[0] == want for d in offered):
        return f"OpenVINO offers no {want} device (it has {', '.join(offered)})"
    return None


def declared_name(port: Any) -> str:
    """The name the model declares for a port of the model as read (before compiling).

    ``port.any_name`` is any one of the tensor's names: when a converter put a Cast
    right behind an input (an fp16 ONNX with its io kept fp32), OpenVINO merges the
    cast's output name into the input's and ``any_name`` may return the cast's
    (``graph_input_cast_0``), which no client knows. A Parameter's friendly name is the
    input's declared name; outputs keep the names of the model's result tensors."""
    names = set(port.get_names())
    node = port.get_node()
    if node.get_type_name() == "Parameter" and node.get_friendly_name() in names:
        return str(node.get_friendly_name())
    if len(names) > 1:
        # a name the converter made up never wins over one that the model declared
        made_up = ("graph_input_cast", "graph_output_cast")
        declared = sorted(n for n in names if not n.startswith(made_up))
        if declared:
            return declared[0]
    return str(port.any_name)


def _spec(port: Any, name: str) -> TensorSpec:
    """A TensorSpec from a compiled model port; dynamic dimensions become -1."""
    try:
        dtype = port.get_element_type().to_dtype()
    except Exception as e:
        raise BackendLoadError(f"tensor {name!r}: unsupported element type: {e}") from e
    shape = tuple(
        d.get_length() if d.is_static and d.get_length() > 0 else -1
        for d in port.get_partial_shape()
    )
    datatype = cast(Datatype, to_kserve_datatype(dtype))
    return TensorSpec(name=name, datatype=datatype, shape=shape)


class OpenVinoBackend:
    """One variant compiled for one OpenVINO device."""

    name = "openvino"
    thread_safe = False  # one InferRequest; the service gives each worker its own backend

    def __init__(self) -> None:
        self._compiled: Any = None
        self._request: Any = None
        self._schema: IOSchema | None = None
        self._device = "cpu"
        self._ov_device = "CPU"
        self._lock = threading.Lock()  # guards the single InferRequest if misused

    def load(self, variant: Variant, options: LoadOptions) -> None:
        try:
            import openvino as ov
        except ImportError as e:
            raise BackendUnavailable(
                f"openvino is not installed (pip install 'headframe[openvino]'): {e}"
            ) from e
        path = variant.entrypoint
        if not path.is_file():
            raise BackendLoadError(f"{path}: model file not found")
        core = ov.Core()
        device = ov_device(options.device)
        available = list(core.available_devices)
        if device not in ("AUTO",) and not any(
            d == device or d.split(".")[0] == device for d in available
        ):
            raise BackendUnavailable(
                f"OpenVINO has no {device} device here (it has {', '.join(available) or 'none'})"
            )
        config: dict[str, Any] = {"PERFORMANCE_HINT": options.performance_hint}
        if options.cache_dir:
            cache = Path(options.cache_dir) / "openvino"
            try:
                cache.mkdir(parents=True, exist_ok=True)
                config["CACHE_DIR"] = str(cache)
            except OSError as e:
                log.warning("cannot use %s as the OpenVINO cache: %s", cache, e)
        if options.intra_op_threads and device.startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = options.intra_op_threads
        try:
            model = core.read_model(str(path))
        except Exception as e:
            raise BackendLoadError(f"{path}: OpenVINO cannot read it: {_reason(e)}") from e
        try:
            compiled = core.compile_model(model, device, config)
        except Exception as e:
            raise BackendLoadError(
                f"{path}: OpenVINO cannot compile it for {device}: {_reason(e)}"
            ) from e
        # Names from the model as read, types and shapes from the compiled ports (the
        # same order): the compiled graph may carry names the model never declared.
        self._schema = IOSchema(
            inputs=tuple(
                _spec(c, declared_name(m))
                for c, m in zip(compiled.inputs, model.inputs, strict=True)
            ),
            outputs=tuple(
                _spec(c, declared_name(m))
                for c, m in zip(compiled.outputs, model.outputs, strict=True)
            ),
        )
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._device = options.device
        self._ov_device = device
        log.info("openvino loaded %s on %s (%s)", path, device, options.performance_hint)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._request is None or self._schema is None:
            raise InferenceFailed("the openvino backend has no model loaded")
        try:
            with self._lock:
                results = self._request.infer(dict(inputs))
                # Copy: the request reuses its output buffers on the next call.
                return {
                    spec.name: np.array(results[port])
                    for spec, port in zip(self._schema.outputs, self._compiled.outputs, strict=True)
                }
        except Exception as e:
            raise InferenceFailed(f"OpenVINO failed: {_reason(e)}") from e

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        raise InvalidInput("this is a tensor model: it does not generate text")

    def describe(self) -> IOSchema:
        if self._schema is None:
            raise InferenceFailed("the openvino backend has no model loaded")
        return self._schema

    def info(self) -> BackendInfo:
        detail = {"ov_device": self._ov_device}
        if self._compiled is not None:
            # Older plugins do not report it; not worth failing info() over.
            with contextlib.suppress(Exception):
                detail["execution_devices"] = ",".join(
                    self._compiled.get_property("EXECUTION_DEVICES")
                )
        return BackendInfo(backend=self.name, device=self._device, detail=detail)

    def unload(self) -> None:
        self._request = None
        self._compiled = None


def _reason(e: BaseException) -> str:
    """Everything OpenVINO said about ``e`` but where in its sources it said it.

    Its messages open with "Exception from src/...cpp:84:" lines and often a "Check '...'
    failed at src/...cpp:900:" line; what is wrong comes after ("Incorrect weights in bin
    file!", or the library an NPU plugin could not load), sometimes on the line after the
    first informative one. Keep every other line, joined: a fallback reason an operator
    reads must not lose its cause."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not _SOURCE_LOCATION.fullmatch(ln)]
    return " ".join(useful or lines) or type(e).__name__


# "Exception from src/inference/src/cpp/core.cpp:84:" or
# "Check 'cond' failed at src/core/xml_util/src/xml_deserialize_util.cpp:900:"
_SOURCE_LOCATION = re.compile(r"(Exception from|Check '.*' failed at) \S+:\d+:")
