"""The onnxruntime backend: ONNX variants on the execution providers the profile names.

Providers are tried in the profile's order, filtered by what this onnxruntime build
offers (CPU is always last resort for nodes a GPU provider cannot take). Graph
optimisation is on; the optimised graph is cached under ``<cache_dir>/onnx/`` keyed by
the model file's sha256, the onnxruntime version and the providers, so the second start
skips the optimiser. The runtime is imported in ``load``, never at import time.

For an embedding package (``LoadOptions.task == "embedding"``) the session is a sentence
encoder wrapped with its tokenizer (runtime.backends.onnx_embed): text in, vectors out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
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
from runtime.files import sha256_file
from runtime.tensors import not_a_tensor, to_kserve_datatype

if TYPE_CHECKING:
    from runtime.catalog import VariantMeta
    from runtime.hardware.report import HardwareReport
    from runtime.profiles import Target

log = logging.getLogger(__name__)

# What to ask for when the profile names a device but no providers.
DEFAULT_PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "auto": ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider"),
    "gpu": ("CUDAExecutionProvider", "ROCMExecutionProvider", "CPUExecutionProvider"),
    "npu": ("OpenVINOExecutionProvider", "QNNExecutionProvider", "CPUExecutionProvider"),
}

# onnxruntime execution providers by the device class they drive (selection's view of a
# GPU or NPU target). OpenVINO's provider drives Intel GPUs and NPUs alike.
PROVIDERS_BY_CLASS: dict[str, tuple[str, ...]] = {
    "gpu": (
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
        "ROCMExecutionProvider",
        "MIGraphXExecutionProvider",
        "DmlExecutionProvider",
        "OpenVINOExecutionProvider",
    ),
    "npu": (
        "OpenVINOExecutionProvider",
        "QNNExecutionProvider",
        "VitisAIExecutionProvider",
        "CANNExecutionProvider",
        "RknpuExecutionProvider",
    ),
}


def device_problem(target: Target, variant: VariantMeta, report: HardwareReport) -> str | None:
    """Why onnxruntime cannot drive ``target``'s GPU or NPU here, or None: none of the
    wanted providers (the target's own that drive that class, else every one that does)
    is among those the probe saw. Pure; CPU and auto always run."""
    cls = target.device.split(".")[0]
    if cls not in PROVIDERS_BY_CLASS:
        return None
    info = report.runtime("onnxruntime")
    offered = info.devices if info else ()
    drives = PROVIDERS_BY_CLASS[cls]
    wanted = [p for p in (target.providers or drives) if p in drives]
    if not any(p in offered for p in wanted):
        has = ", ".join(offered) or "none"
        return f"onnxruntime offers no {cls.upper()} provider ({' or '.join(wanted)}; it has {has})"
    return None


# onnxruntime's "tensor(float)" names -> numpy dtypes.
_ORT_TYPES: dict[str, Any] = {
    "tensor(bool)": np.bool_,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(float16)": np.float16,
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(string)": np.object_,
}


def _spec(arg: Any) -> TensorSpec:
    """A TensorSpec from an onnxruntime NodeArg; symbolic or unknown dims become -1."""
    if arg.type not in _ORT_TYPES:
        if not arg.type.startswith("tensor("):  # seq(...), map(...): e.g. sklearn's ZipMap
            raise BackendLoadError(not_a_tensor(arg.name, f"a {arg.type}"))
        raise BackendLoadError(
            f"tensor {arg.name!r} has type {arg.type}, which headframe cannot carry"
        )
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in (arg.shape or ()))
    datatype = cast(Datatype, to_kserve_datatype(_ORT_TYPES[arg.type]))
    return TensorSpec(name=arg.name, datatype=datatype, shape=shape)


def _to_ort(arr: np.ndarray) -> np.ndarray:
    # BYTES travel as object arrays of bytes; onnxruntime's string tensors want str (it
    # would otherwise str() each element into "b'...'").
    if arr.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else b,
                            otypes=[object])(arr)  # fmt: skip
    return arr


def _from_ort(r: Any) -> np.ndarray:
    arr = np.asarray(r)
    if arr.dtype.kind in "OU":
        return np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s,
                            otypes=[object])(arr)  # fmt: skip
    return arr


class OnnxBackend:
    """One ONNX variant in one onnxruntime InferenceSession."""

    name = "onnx"
    thread_safe = True  # InferenceSession.run may be called from several threads

    def __init__(self) -> None:
        self._session: Any = None
        self._device = "cpu"
        self._schema: IOSchema | None = None
        self._cache_state = "off"
        self._encoder: Any = None

    def load(self, variant: Variant, options: LoadOptions) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable(
                f"onnxruntime is not installed (pip install 'headframe[onnx]'): {e}"
            ) from e
        path = variant.entrypoint
        if not path.is_file():
            raise BackendLoadError(f"{path}: model file not found")
        providers = self._providers(ort.get_available_providers(), options)
        cache = self._cache_path(variant, options, providers, ort)
        try:
            session = self._open(ort, path, cache, options, providers)
        except Exception as e:
            if cache is None or not cache.is_file():
                raise BackendLoadError(f"{path}: onnxruntime cannot load it: {e}") from e
            # A stale or damaged cache entry must never stop a good model loading.
            log.warning("optimised cache %s unusable (%s); rebuilding", cache, e)
            with contextlib.suppress(OSError):
                cache.unlink()
            retry_cache = None if cache.exists() else cache
            try:
                session = self._open(ort, path, retry_cache, options, providers)
            except Exception as e2:
                raise BackendLoadError(f"{path}: onnxruntime cannot load it: {e2}") from e2
        self._session = session
        self._device = options.device
        self._schema = IOSchema(
            inputs=tuple(_spec(a) for a in session.get_inputs()),
            outputs=tuple(_spec(a) for a in session.get_outputs()),
        )
        if options.task == "embedding":
            from runtime.backends.embedding import EMBEDDING_SCHEMA
            from runtime.backends.onnx_embed import SentenceEncoder

            self._encoder = SentenceEncoder.open(session, variant, options.embedding)
            self._schema = EMBEDDING_SCHEMA
        log.info(
            "onnx loaded %s on %s (providers %s, cache %s)",
            path,
            options.device,
            ",".join(session.get_providers()),
            self._cache_state,
        )

    def _providers(self, offered: list[str], options: LoadOptions) -> list[str]:
        cls = options.device.split(".")[0]
        wanted = list(options.providers or DEFAULT_PROVIDERS.get(cls, DEFAULT_PROVIDERS["cpu"]))
        usable = [p for p in wanted if p in offered]
        accelerated = [p for p in usable if p != "CPUExecutionProvider"]
        if cls in ("gpu", "npu") and not accelerated:
            raise BackendUnavailable(
                f"onnxruntime offers none of {', '.join(wanted)} for {options.device} "
                f"(it has {', '.join(offered)})"
            )
        if not usable:
            raise BackendUnavailable(
                f"onnxruntime offers none of {', '.join(wanted)} (it has {', '.join(offered)})"
            )
        return usable

    def _cache_path(
        self, variant: Variant, options: LoadOptions, providers: list[str], ort: Any
    ) -> Path | None:
        if not options.cache_dir:
            return None
        sha = next(
            (f.sha256 for f in variant.meta.files if f.path == variant.meta.entrypoint), None
        ) or sha256_file(variant.entrypoint)
        salt = hashlib.sha256(f"{ort.__version__}|{','.join(providers)}".encode()).hexdigest()
        return Path(options.cache_dir) / "onnx" / f"{sha[:32]}-{salt[:12]}.onnx"

    def _open(
        self, ort: Any, path: Path, cache: Path | None, options: LoadOptions, providers: list[str]
    ) -> Any:
        """An InferenceSession, from the cached optimised graph when there is one, else from
        the model file (writing the optimised graph to the cache on the way)."""
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads or default_intra_op_threads()
        so.inter_op_num_threads = options.inter_op_threads
        so.log_severity_level = 3  # errors only; our own messages say what happened
        if cache is not None and cache.is_file():
            # Already optimised for this runtime and these providers: skip the optimiser.
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            self._cache_state = "hit"
            return ort.InferenceSession(str(cache), sess_options=so, providers=providers)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._cache_state = "off"
        tmp: Path | None = None
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
                os.close(fd)
                tmp = Path(name)
                so.optimized_model_filepath = name
            except OSError as e:
                log.warning("cannot write the onnx cache under %s: %s", cache.parent, e)
        try:
            session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        finally:
            if tmp is not None and cache is not None:
                self._finish_cache(tmp, cache)
        return session

    def _finish_cache(self, tmp: Path, cache: Path) -> None:
        # Atomic rename so that a half-written graph is never read as a cache hit.
        try:
            if tmp.stat().st_size > 0:
                os.replace(tmp, cache)
                self._cache_state = "miss"
            else:
                tmp.unlink()
        except OSError as e:
            log.warning("cannot store the optimised model %s: %s", cache, e)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None or self._schema is None:
            raise InferenceFailed("the onnx backend has no model loaded")
        if self._encoder is not None:
            from runtime.backends.embedding import texts_of

            return dict(self._encoder.embed(texts_of(inputs, self._encoder.limits)))
        try:
            results = self._session.run(None, {k: _to_ort(v) for k, v in inputs.items()})
        except Exception as e:
            raise InferenceFailed(f"onnxruntime failed: {e}") from e
        return {
            spec.name: _from_ort(r) for spec, r in zip(self._schema.outputs, results, strict=True)
        }

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        raise InvalidInput("this is a tensor model: it does not generate text")

    def describe(self) -> IOSchema:
        if self._schema is None:
            raise InferenceFailed("the onnx backend has no model loaded")
        return self._schema

    def info(self) -> BackendInfo:
        providers = self._session.get_providers() if self._session is not None else []
        detail = {
            "provider": providers[0] if providers else "",
            "providers": ",".join(providers),
            "optimized_cache": self._cache_state,
        }
        return BackendInfo(backend=self.name, device=self._device, detail=detail)

    def unload(self) -> None:
        self._session = None
        self._encoder = None


def default_intra_op_threads() -> int:
    """The intra-op threads when the profile leaves it to the runtime (0): one per physical
    core less one. onnxruntime's own default takes every physical core and its pool threads
    spin between runs, taking the core the event loop needs to parse the next request: on
    2 cores that was most of the gap to a bare app handing inference to one thread
    (bench/serving_bench.py, bench/README.md "Serving"). A profile that names a count gets
    that count."""
    import psutil

    physical = psutil.cpu_count(logical=False) or os.cpu_count() or 2
    return max(1, physical - 1)
