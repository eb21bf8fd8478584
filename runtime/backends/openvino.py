"""The OpenVINO backend: IR (.xml + .bin) or ONNX variants on NPU, GPU, CPU or AUTO.

The device comes from the profile's target ("npu" -> "NPU", "gpu.1" -> "GPU.1");
compiled blobs go to ``<cache_dir>/openvino`` (OpenVINO's CACHE_DIR) so the second start
skips compilation, which on an NPU or GPU takes seconds. The performance hint (LATENCY
or THROUGHPUT) comes from LoadOptions. The runtime is imported in ``load`` only.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

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

log = logging.getLogger(__name__)


def ov_device(device: str) -> str:
    """The OpenVINO device name for a profile device: "npu" -> "NPU", "gpu.1" -> "GPU.1"."""
    return device.upper()


def _spec(port: Any) -> TensorSpec:
    """A TensorSpec from a compiled model port; dynamic dimensions become -1."""
    try:
        dtype = port.get_element_type().to_dtype()
    except Exception as e:
        raise BackendLoadError(f"tensor {port.any_name!r}: unsupported element type: {e}") from e
    shape = tuple(
        d.get_length() if d.is_static and d.get_length() > 0 else -1
        for d in port.get_partial_shape()
    )
    datatype = cast(Datatype, to_kserve_datatype(dtype))
    return TensorSpec(name=port.any_name, datatype=datatype, shape=shape)


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
            raise BackendLoadError(f"{path}: OpenVINO cannot read it: {_first_line(e)}") from e
        try:
            compiled = core.compile_model(model, device, config)
        except Exception as e:
            raise BackendLoadError(
                f"{path}: OpenVINO cannot compile it for {device}: {_first_line(e)}"
            ) from e
        self._schema = IOSchema(
            inputs=tuple(_spec(p) for p in compiled.inputs),
            outputs=tuple(_spec(p) for p in compiled.outputs),
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
            raise InferenceFailed(f"OpenVINO failed: {_first_line(e)}") from e

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


def _first_line(e: BaseException) -> str:
    # OpenVINO messages open with "Exception from src/...cpp:84:" source locations; the
    # first other line is the one that says what is wrong.
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith("Exception from ")]
    return (useful or lines or [type(e).__name__])[0]
