"""KServe Open Inference Protocol v2: requests in, responses out, for HTTP and MQTT alike.

Two wire forms share one decoder. Plain JSON (``data`` flat or nested, every datatype,
BYTES as strings) and Triton's binary tensor extension: a JSON header of
``header_length`` bytes followed by raw tensors, each input saying its size in
``parameters.binary_data_size``. Every length is checked against the bytes actually
present, so a header that lies is an InvalidInput, never a crash or an over-read.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from runtime.codecs.classification import top_k
from runtime.codecs.nesting import brackets, depth_exceeds
from runtime.errors import InvalidInput
from runtime.tensors import element_size, numpy_dtype, to_kserve_datatype

HEADER_LENGTH = "inference-header-content-length"
MAX_DIMS = 32
# The most elements a shape may describe, counting only its non-zero dimensions: a shape
# with a zero in it holds no data, yet numpy still refuses one whose other dimensions
# overflow its index type ([0, 2**62, 2**62]), so the bound applies to those too.
MAX_ELEMENTS = 2**32


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; ``binary_data`` None means "use the request default";
    ``classification`` k asks for the top k with names (runtime.codecs.classification)."""

    name: str
    binary_data: bool | None = None
    classification: int | None = None


@dataclass
class InferRequest:
    """A decoded request: named numpy inputs plus what the client asked to get back."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[RequestedOutput] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    binary_output: bool = False  # request-level parameters.binary_data_output
    # The body's ``model_version`` (MQTT carries it there; HTTP in the URL), if a string.
    model_version: str | None = None

    @property
    def output_names(self) -> list[str] | None:
        return None if self.outputs is None else [o.name for o in self.outputs]


def _fail(msg: str) -> InvalidInput:
    return InvalidInput(msg)


def _parse_json(raw: bytes | memoryview) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        # orjson also rejects invalid UTF-8 here, with a message that says so.
        raise _fail(f"request body is not valid JSON: {e}") from None


def _shape(spec: Mapping[str, Any], where: str) -> tuple[int, ...]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise _fail(f"{where}: 'shape' must be a list of at most {MAX_DIMS} integers")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _fail(f"{where}: 'shape' must hold non-negative integers, got {shape}")
    if math.prod(d for d in shape if d) > MAX_ELEMENTS:
        raise _fail(f"{where}: 'shape' {shape} describes more than {MAX_ELEMENTS} elements")
    return tuple(shape)


def _bool_param(params: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _fail(f"{where}: parameter {key!r} must be true or false")
    return value


def _from_json_data(data: Any, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        flat = _flatten(data, where)
        if len(flat) != count:
            raise _fail(f"{where}: shape {list(shape)} needs {count} elements, got {len(flat)}")
        out = np.empty(count, dtype=object)
        for i, v in enumerate(flat):
            if not isinstance(v, str):
                raise _fail(f"{where}: BYTES data must be strings, got {type(v).__name__}")
            out[i] = v.encode("utf-8")
        return out.reshape(shape)
    dtype = numpy_dtype(datatype)
    try:
        arr = np.asarray(data if isinstance(data, list) else [data])
    except ValueError as e:  # ragged nesting
        raise _fail(f"{where}: 'data' is not a regular nested list: {e}") from None
    if arr.size != count:
        raise _fail(f"{where}: shape {list(shape)} needs {count} elements, got {arr.size}")
    kind = arr.dtype.kind
    if count and kind not in "biufO":
        raise _fail(f"{where}: {datatype} data must be numbers, got strings")
    if kind == "O" and dtype.kind not in "iu":
        raise _fail(f"{where}: {datatype} data must be numbers, got mixed values")
    if datatype == "BOOL" and count and kind != "b":
        raise _fail(f"{where}: BOOL data must be true or false")
    if datatype != "BOOL" and kind == "b":
        raise _fail(f"{where}: {datatype} data must be numbers, not true/false")
    if kind in "fO" and dtype.kind in "iu":
        # numpy falls back to float for ints beyond int64 (large UINT64): check by hand.
        flat = _flatten(data, where)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in flat):
            raise _fail(f"{where}: {datatype} data must be integers")
        try:
            return np.array(flat, dtype=dtype).reshape(shape)
        except OverflowError:
            raise _fail(f"{where}: values out of range for {datatype}") from None
    if dtype.kind in "iu" and count:
        info = np.iinfo(dtype)
        if int(arr.min()) < info.min or int(arr.max()) > info.max:
            raise _fail(f"{where}: values out of range for {datatype}")
    return arr.astype(dtype, copy=False).reshape(shape)


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                if len(stack) > MAX_DIMS:
                    raise _fail(f"{where}: 'data' is nested deeper than {MAX_DIMS}")
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _from_binary(raw: memoryview, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    count = math.prod(shape)
    size = element_size(datatype)
    if size is not None:
        if len(raw) != count * size:
            raise _fail(
                f"{where}: binary_data_size is {len(raw)} bytes but shape {list(shape)} of "
                f"{datatype} needs {count * size}"
            )
        return np.frombuffer(raw, dtype=numpy_dtype(datatype).newbyteorder("<")).reshape(shape)
    # BYTES: each element is a 4-byte little-endian length, then that many bytes.
    if count * 4 > len(raw):
        raise _fail(f"{where}: {len(raw)} bytes cannot hold {count} BYTES elements")
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > len(raw):
            raise _fail(f"{where}: BYTES tensor ends after {i} of {count} elements")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise _fail(f"{where}: BYTES element {i} claims {n} bytes past the tensor's end")
        out[i] = bytes(raw[pos : pos + n])
        pos += n
    if pos != len(raw):
        raise _fail(f"{where}: {len(raw) - pos} stray bytes after the BYTES elements")
    return out.reshape(shape)


def decode_infer_request(
    body: bytes, header_length: int | None, *, max_depth: int | None = None
) -> InferRequest:
    """Decode a v2 infer request body; ``header_length`` is the Inference-Header-Content-Length
    header (None or absent for plain JSON). Raises InvalidInput with a message that names
    the input and the problem. ``max_depth`` bounds how deep the JSON may nest (MQTT's
    ``max_json_depth``), checked on the one parse."""
    view = memoryview(body)
    if header_length is None:
        header, binary = view, view[:0]
    else:
        if header_length < 0 or header_length > len(body):
            raise _fail(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"only {len(body)} bytes"
            )
        header, binary = view[:header_length], view[header_length:]
    doc = _parse_json(header)
    if not isinstance(doc, dict):
        raise _fail("request body must be a JSON object")
    if max_depth is not None and brackets(header) > max_depth and depth_exceeds(doc, max_depth):
        raise _fail(f"payload nests deeper than {max_depth} levels")
    req_id = doc.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise _fail("'id' must be a string")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise _fail("'parameters' must be an object")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _fail("'inputs' must be a non-empty list")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for i, spec in enumerate(raw_inputs):
        if not isinstance(spec, dict):
            raise _fail(f"inputs[{i}] must be an object")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise _fail(f"inputs[{i}]: 'name' must be a non-empty string")
        where = f"input {name!r}"
        if name in inputs:
            raise _fail(f"{where} appears twice")
        datatype = spec.get("datatype")
        if not isinstance(datatype, str):
            raise _fail(f"{where}: 'datatype' must be a string")
        numpy_dtype(datatype)  # unknown names fail here, with the list of known ones
        shape = _shape(spec, where)
        iparams = spec.get("parameters") or {}
        if not isinstance(iparams, dict):
            raise _fail(f"{where}: 'parameters' must be an object")
        bsize = iparams.get("binary_data_size")
        if bsize is not None:
            if not isinstance(bsize, int) or isinstance(bsize, bool) or bsize < 0:
                raise _fail(f"{where}: binary_data_size must be a non-negative integer")
            if "data" in spec:
                raise _fail(f"{where}: has both 'data' and binary_data_size")
            if offset + bsize > len(binary):
                raise _fail(
                    f"{where}: binary_data_size {bsize} runs past the end of the body "
                    f"({len(binary) - offset} binary bytes left)"
                )
            inputs[name] = _from_binary(binary[offset : offset + bsize], datatype, shape, where)
            offset += bsize
        elif "data" in spec:
            inputs[name] = _from_json_data(spec["data"], datatype, shape, where)
        else:
            raise _fail(f"{where}: needs 'data' or parameters.binary_data_size")
    if offset != len(binary):
        raise _fail(
            f"the body has {len(binary) - offset} bytes after the declared binary inputs "
            "(binary_data_size and Inference-Header-Content-Length disagree)"
        )
    outputs = _requested_outputs(doc.get("outputs"))
    binary_output = bool(_bool_param(params, "binary_data_output", "parameters"))
    version = doc.get("model_version")
    version = version if isinstance(version, str) else None
    return InferRequest(inputs, req_id, outputs, params, binary_output, version)


def _requested_outputs(raw: Any) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _fail("'outputs' must be a list")
    out = []
    for i, spec in enumerate(raw):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _fail(f"outputs[{i}] must be an object with a string 'name'")
        oparams = spec.get("parameters") or {}
        if not isinstance(oparams, dict):
            raise _fail(f"outputs[{i}]: 'parameters' must be an object")
        k = oparams.get("classification")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            raise _fail(f"outputs[{i}]: parameter 'classification' must be a positive integer")
        binary = _bool_param(oparams, "binary_data", f"outputs[{i}]")
        out.append(RequestedOutput(spec["name"], binary, k))
    return out


def _to_bytes_elements(arr: np.ndarray) -> list[bytes]:
    return [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in arr.ravel()]


def _json_data(arr: np.ndarray, datatype: str) -> list[Any]:
    if datatype == "BYTES":
        return [b.decode("utf-8", "replace") for b in _to_bytes_elements(arr)]
    return arr.ravel().tolist()


def _binary_data(arr: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for b in _to_bytes_elements(arr):
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def encode_infer_response(
    model_name: str,
    model_version: str | None,
    outputs: Mapping[str, np.ndarray],
    *,
    request_id: str | None = None,
    requested: Sequence[RequestedOutput] | None = None,
    binary_default: bool = False,
    parameters: Mapping[str, Any] | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
) -> tuple[bytes, int | None]:
    """Encode a v2 response. Returns (body, header_length): header_length is None for plain
    JSON, else the JSON header's size for the Inference-Header-Content-Length header.

    Outputs are sent in ``requested`` order (all of ``outputs`` when None); each is binary
    when its ``binary_data`` says so, else when ``binary_default`` does; one asked for with
    ``classification`` k is its top k, named from ``labels`` (the package's label lists)."""
    wanted = {o.name: o.binary_data for o in requested} if requested else None
    ranks = {o.name: o.classification for o in requested or () if o.classification}
    names = list(wanted) if wanted is not None else list(outputs)
    doc: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        doc["model_version"] = model_version
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = dict(parameters)
    specs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name in names:
        arr = np.asarray(outputs[name])
        if name in ranks:
            arr = top_k(name, arr, ranks[name], (labels or {}).get(name))
        datatype = to_kserve_datatype(arr.dtype)
        spec: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        flag = wanted.get(name) if wanted is not None else None
        if flag if flag is not None else binary_default:
            blob = _binary_data(arr, datatype)
            spec["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            spec["data"] = _json_data(arr, datatype)
        specs.append(spec)
    doc["outputs"] = specs
    header = orjson.dumps(doc)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
