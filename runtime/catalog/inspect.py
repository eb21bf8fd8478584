"""What a model file says about itself: format, precision, inputs and outputs, extra files.

Used by ``headframe models add`` to wrap a bare model file into a package. Reads files
only (ONNX protobuf, OpenVINO IR through OpenVINO's reader, GGUF header through the
``gguf`` package); never runs a model. Every failure is a MetadataError naming the file.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from dataclasses import replace as replace_info
from pathlib import Path
from typing import Any

from runtime.catalog.package import TensorSpec
from runtime.errors import MetadataError
from runtime.tensors import not_a_tensor

log = logging.getLogger(__name__)

# ONNX TensorProto element types -> KServe datatypes.
_ONNX_DATATYPES = {
    1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "BYTES", 9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64",
}  # fmt: skip
# ONNX initializer element types -> precision names (what the weights are stored as).
_ONNX_PRECISION = {
    1: "fp32", 10: "fp16", 16: "bf16", 11: "fp64", 2: "int8", 3: "int8", 21: "int4", 22: "int4",
}  # fmt: skip
_OV_DATATYPES = {
    "f32": "FP32", "f16": "FP16", "f64": "FP64", "i8": "INT8", "u8": "UINT8", "i16": "INT16",
    "u16": "UINT16", "i32": "INT32", "u32": "UINT32", "i64": "INT64", "u64": "UINT64",
    "boolean": "BOOL", "string": "BYTES",
}  # fmt: skip
_OV_PRECISION = {
    "f32": "fp32", "f16": "fp16", "bf16": "bf16", "i8": "int8", "u8": "int8",
    "i4": "int4", "u4": "int4", "nf4": "int4",
}  # fmt: skip


@dataclass(frozen=True)
class ModelInfo:
    """What inspection found; ``extra_files`` (absolute, inside the entrypoint's directory)
    must travel with the entrypoint, at the same relative paths."""

    format: str
    precision: str
    task: str
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    extra_files: tuple[Path, ...] = ()
    name: str | None = None  # a name the file gives itself (GGUF general.name)
    runtime_bytes: int = 0  # memory beyond the weights, where the file says (GGUF KV cache)
    details: dict[str, Any] = field(default_factory=dict)
    task_reason: str = ""  # why ``task`` (what `models add` says it decided)


def inspect_model(path: Path) -> ModelInfo:
    """Dispatch on the file's suffix: .onnx, .xml (OpenVINO IR), .gguf."""
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return inspect_onnx(path)
    if suffix == ".xml":
        return inspect_openvino(path)
    if suffix == ".gguf":
        return inspect_gguf(path)
    raise MetadataError(
        f"{path}: unknown model format {suffix or '(no suffix)'!r}: expected a package "
        "directory, .onnx, OpenVINO .xml (with its .bin) or .gguf"
    )


def _dominant(counts: Counter[str], path: Path, default: str = "fp32") -> str:
    if not counts:
        log.info("%s: no weights found, precision taken as %s", path, default)
        return default
    return counts.most_common(1)[0][0]


# --- ONNX ------------------------------------------------------------------------------


def _onnx_spec(value_info: Any, path: Path) -> TensorSpec:
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":  # a sequence or map: e.g. scikit-learn's ZipMap output
        what = {"sequence_type": "a sequence", "map_type": "a map"}.get(kind, f"a {kind}")
        if kind == "sequence_type" and value_info.type.sequence_type.elem_type.HasField("map_type"):
            what = "a sequence of maps"
        raise MetadataError(f"{path}: {not_a_tensor(value_info.name, what)}")
    ttype = value_info.type.tensor_type
    datatype = _ONNX_DATATYPES.get(ttype.elem_type)
    if datatype is None:
        raise MetadataError(
            f"{path}: tensor {value_info.name!r} has element type {ttype.elem_type}, "
            "which headframe cannot serve"
        )
    dims = tuple(d.dim_value if d.dim_value > 0 else -1 for d in ttype.shape.dim)
    return TensorSpec(name=value_info.name, datatype=datatype, shape=dims)  # type: ignore[arg-type]


def inspect_onnx(path: Path) -> ModelInfo:
    """Precision is the storage type holding most initializer elements (int8 when a
    quantized model keeps only biases and scales in float)."""
    try:
        import onnx
        from onnx import external_data_helper
    except ImportError as e:
        raise MetadataError(f"{path}: reading ONNX needs the onnx package (headframe[onnx])") from e
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises many types; all mean "bad file"
        raise MetadataError(f"{path}: not a valid ONNX model: {e}") from e
    counts: Counter[str] = Counter()
    extra: list[Path] = []
    for init in model.graph.initializer:
        n = 1
        for d in init.dims:
            n *= d
        precision = _ONNX_PRECISION.get(init.data_type)
        if precision is not None and n > 1:  # skip scalars (scales, zero points)
            counts[precision] += n
        if external_data_helper.uses_external_data(init):
            loc = next((e.value for e in init.external_data if e.key == "location"), None)
            if loc is not None:
                extra_path = (path.parent / loc).resolve()
                if not extra_path.is_relative_to(path.resolve().parent):
                    raise MetadataError(
                        f"{path}: external data file {loc!r} lies outside the model's directory"
                    )
                if not extra_path.is_file():
                    raise MetadataError(f"{path}: external data file {loc!r} is missing")
                if extra_path not in extra:
                    extra.append(extra_path)
    try:
        # By path, so the checker finds external data beside the model.
        onnx.checker.check_model(str(path))
    except Exception as e:  # the checker raises ValidationError and friends
        raise MetadataError(f"{path}: not a valid ONNX model: {e}") from e
    init_names = {i.name for i in model.graph.initializer}
    inputs = tuple(_onnx_spec(i, path) for i in model.graph.input if i.name not in init_names)
    outputs = tuple(_onnx_spec(o, path) for o in model.graph.output)
    return ModelInfo(
        format="onnx",
        precision=_dominant(counts, path),
        task="tensor",
        task_reason="an ONNX graph is a tensor model unless --task embedding says otherwise",
        inputs=inputs,
        outputs=outputs,
        extra_files=tuple(extra),
        details={"opset": max((o.version for o in model.opset_import), default=0)},
    )


# --- OpenVINO IR -------------------------------------------------------------------------


def _ir_precision(xml_path: Path) -> str:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise MetadataError(f"{xml_path}: not valid OpenVINO IR XML: {e}") from e
    counts: Counter[str] = Counter()
    for layer in root.iter("layer"):
        if layer.get("type") != "Const":
            continue
        data = layer.find("data")
        if data is None:
            continue
        precision = _OV_PRECISION.get(data.get("element_type", ""))
        if precision is not None:
            counts[precision] += int(data.get("size", "0"))
    return _dominant(counts, xml_path)


def inspect_openvino(xml_path: Path) -> ModelInfo:
    bin_path = xml_path.with_suffix(".bin")
    if not bin_path.is_file():
        raise MetadataError(f"{xml_path}: the weights file {bin_path.name} must sit beside it")
    precision = _ir_precision(xml_path)
    try:
        import openvino as ov
    except ImportError as e:
        raise MetadataError(
            f"{xml_path}: reading OpenVINO IR needs the openvino package (headframe[openvino])"
        ) from e
    try:
        model = ov.Core().read_model(str(xml_path))
    except Exception as e:  # OpenVINO raises RuntimeError subclasses with its own text
        raise MetadataError(f"{xml_path}: OpenVINO cannot read this IR: {e}") from e

    def spec(port: Any) -> TensorSpec:
        etype = port.get_element_type().get_type_name()
        datatype = _OV_DATATYPES.get(etype)
        if datatype is None:
            raise MetadataError(f"{xml_path}: tensor type {etype!r} cannot be served")
        pshape = port.get_partial_shape()
        dims = tuple(d.get_length() if d.is_static else -1 for d in pshape)
        return TensorSpec(name=port.get_any_name(), datatype=datatype, shape=dims)  # type: ignore[arg-type]

    return ModelInfo(
        format="openvino",
        precision=precision,
        task="tensor",
        inputs=tuple(spec(p) for p in model.inputs),
        outputs=tuple(spec(p) for p in model.outputs),
        extra_files=(bin_path.resolve(),),
    )


# --- GGUF --------------------------------------------------------------------------------

# The ranges a GGUF's numbers must fall in to be believed: a 288-byte file may claim
# anything, and what it claims sizes the memory estimate.
_GGUF_RANGES = {
    "block_count": (1, 4096),
    "embedding_length": (1, 1 << 20),
    "attention.head_count": (1, 1 << 16),
    "attention.head_count_kv": (0, 1 << 16),
    "context_length": (1, 1 << 26),
}


class _GGUFMeta:
    """Typed reads of one GGUF's metadata; every failure is one MetadataError line that
    names the file and the key."""

    def __init__(self, reader: Any, path: Path) -> None:
        self.reader = reader
        self.path = path

    def _raw(self, key: str) -> Any:
        fld = self.reader.get_field(key)
        return None if fld is None else fld.contents()

    def _bad(self, key: str, why: str) -> MetadataError:
        return MetadataError(f"{self.path}: {key}: {why}")

    def _kind(self, value: Any) -> str:
        if isinstance(value, str):
            return "a string"
        return "a list" if isinstance(value, list) else type(value).__name__

    def text(self, key: str, limit: int = 256) -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._bad(key, f"a string, not {self._kind(value)}")
        return value[:limit]

    def integer(self, key: str, lo: int, hi: int) -> int | None:
        value = self._raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, f"an integer, not {self._kind(value)}")
        if not lo <= value <= hi:
            raise self._bad(key, f"{value} is out of range ({lo}..{hi})")
        return value

    def per_layer(self, key: str, lo: int, hi: int, layers: int) -> list[int] | None:
        """An integer, or one per layer (some models vary it by layer)."""
        value = self._raw(key)
        if not isinstance(value, list):
            one = self.integer(key, lo, hi)
            return None if one is None else [one] * layers
        if len(value) != layers:
            raise self._bad(key, f"{len(value)} values for {layers} layers")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise self._bad(key, f"each value an integer in {lo}..{hi}, not {v!r}")
        return list(value)

    def flag(self, key: str) -> bool | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self._bad(key, f"a boolean, not {self._kind(value)}")
        return value

    def arch_int(self, arch: str, name: str) -> int | None:
        return self.integer(f"{arch}.{name}", *_GGUF_RANGES[name])


def _gguf_precision(reader: Any, meta: _GGUFMeta) -> str:
    import gguf

    file_type = meta.integer("general.file_type", 0, 1 << 16)
    if file_type is not None:
        try:
            name = gguf.LlamaFileType(file_type).name
        except ValueError:
            name = ""
        for prefix in ("MOSTLY_", "ALL_"):
            if name.startswith(prefix):
                return name[len(prefix) :].lower().replace("f32", "fp32").replace("f16", "fp16")
    # No (known) file type: the tensor type holding most elements decides.
    counts: Counter[str] = Counter()
    for t in reader.tensors:
        counts[t.tensor_type.name.lower()] += int(t.n_elements)
    return (
        (counts.most_common(1)[0][0] if counts else "fp32")
        .replace("f32", "fp32")
        .replace("f16", "fp16")
    )


def gguf_kv_cache_bytes(
    reader: Any, context_tokens: int = 2048, path: Path = Path("the GGUF")
) -> int:
    """f16 K and V caches for ``context_tokens`` (llama.cpp's default cache type), layer by
    layer; MetadataError when a number it needs has the wrong type or range."""
    meta = _GGUFMeta(reader, path)
    arch = meta.text("general.architecture", 64)
    if not arch:
        return 0
    layers = meta.arch_int(arch, "block_count") or 0
    embd = meta.arch_int(arch, "embedding_length") or 0
    heads = meta.arch_int(arch, "attention.head_count") or 1
    lo, hi = _GGUF_RANGES["attention.head_count_kv"]
    kv_heads = meta.per_layer(f"{arch}.attention.head_count_kv", lo, hi, layers)
    ctx = min(context_tokens, meta.arch_int(arch, "context_length") or context_tokens)
    per_layer = kv_heads if kv_heads is not None else [heads] * layers
    return sum(2 * ctx * (embd * kv // heads) * 2 for kv in per_layer)


# Encoder architectures llama.cpp serves as embedding models (bidirectional attention).
EMBEDDING_ARCHITECTURES = frozenset({
    "bert", "modern-bert", "nomic-bert", "nomic-bert-moe", "neo-bert", "jina-bert-v2",
    "jina-bert-v3", "eurobert", "t5encoder",
})  # fmt: skip
_POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


def gguf_task(meta: _GGUFMeta) -> tuple[str, str]:
    """(task, why) from a GGUF's architecture, pooling type and causal flag: an encoder
    architecture, or any architecture that declares a pooling type, is an embedding model;
    a reranker (pooling "rank") is refused; the rest generate text."""
    path = meta.path
    arch = meta.text("general.architecture", 64) or ""
    pooling_id = meta.integer(f"{arch}.pooling_type", 0, 255)
    pooling = _POOLING.get(pooling_id, str(pooling_id)) if pooling_id is not None else None
    causal = meta.flag(f"{arch}.attention.causal")
    if pooling == "rank":
        raise MetadataError(
            f"{path}: a reranker (architecture {arch!r}, pooling type rank); headframe serves "
            "embedding and text models, not rerankers"
        )
    said = f"pooling type {pooling}" if pooling else "no pooling type"
    if arch in EMBEDDING_ARCHITECTURES:
        return "embedding", f"GGUF architecture {arch!r} is an encoder ({said})"
    if pooling not in (None, "none"):
        return "embedding", f"GGUF architecture {arch!r} declares {said}"
    if causal is False:
        return "embedding", f"GGUF architecture {arch!r} has bidirectional attention ({said})"
    return "text", f"GGUF architecture {arch!r} is a decoder with {said}"


def inspect_gguf(path: Path) -> ModelInfo:
    try:
        import gguf
    except ImportError as e:
        raise MetadataError(f"{path}: reading GGUF needs the gguf package") from e
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # the reader raises ValueError, struct errors, IndexError ...
        raise MetadataError(f"{path}: not a valid GGUF file: {e}") from e
    meta = _GGUFMeta(reader, path)
    arch = meta.text("general.architecture", 64)
    name = meta.text("general.name")
    task, why = gguf_task(meta)
    return ModelInfo(
        format="gguf",
        precision=_gguf_precision(reader, meta)[:16],
        task=task,
        task_reason=why,
        name=name or None,
        runtime_bytes=gguf_kv_cache_bytes(reader, path=path),
        details={"architecture": arch, "tensors": len(reader.tensors)},
    )


# --- the task a bare file is imported as ------------------------------------------------

# Which tasks each format can serve as: headframe's embedding path reads GGUF through
# llama.cpp and ONNX through onnxruntime with the encoder's tokenizer.json beside it.
TASKS_BY_FORMAT = {"gguf": ("text", "embedding"), "onnx": ("tensor", "embedding"),
                   "openvino": ("tensor",)}  # fmt: skip


def decide_task(info: ModelInfo, src: Path, requested: str | None) -> ModelInfo:
    """The task a bare file is imported as, and why: inspection's answer, or ``requested``
    where the format can serve it. An ONNX encoder brings its tokenizer.json along."""
    allowed = TASKS_BY_FORMAT[info.format]
    if requested is None:
        return info
    if requested not in allowed:
        raise MetadataError(
            f"{src}: --task {requested}: a {info.format} model can be imported as "
            f"{' or '.join(allowed)}"
        )
    why = f"--task {requested}"
    if info.task != requested and info.task_reason:
        why += f" (inspection said {info.task}: {info.task_reason})"
    if info.format == "onnx" and requested == "embedding":
        tokenizer = src.parent / "tokenizer.json"
        if not tokenizer.is_file():
            raise MetadataError(
                f"{src}: an ONNX sentence encoder needs its tokenizer.json beside it "
                f"({tokenizer} is missing)"
            )
        names = {s.name for s in info.inputs}
        if "input_ids" not in names:
            raise MetadataError(
                f"{src}: a sentence encoder takes input_ids (it takes {sorted(names)})"
            )
        extra = (*info.extra_files, tokenizer.resolve())
        return replace_info(info, task=requested, task_reason=why, extra_files=extra,
                            inputs=(), outputs=())  # fmt: skip
    return replace_info(info, task=requested, task_reason=why)
