"""The KServe v2 datatype vocabulary and its numpy twins.

One table shared by the codecs (HTTP, MQTT), the service's input validation and the
backends, so that "FP32" means the same thing everywhere. BYTES tensors are numpy
object arrays of ``bytes``.
"""

from __future__ import annotations

import numpy as np

from runtime.errors import InvalidInput

_NUMPY: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_KSERVE: dict[np.dtype, str] = {dt: name for name, dt in _NUMPY.items()}

DATATYPES: tuple[str, ...] = tuple(_NUMPY)


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype for a KServe datatype name; InvalidInput for an unknown name."""
    try:
        return _NUMPY[datatype]
    except (KeyError, TypeError):
        known = ", ".join(DATATYPES)
        raise InvalidInput(f"unknown datatype {datatype!r} (known: {known})") from None


def to_kserve_datatype(dtype: np.dtype | type) -> str:
    """The KServe datatype name of a numpy dtype; strings and bytes map to BYTES."""
    name = _KSERVE.get(dtype)  # type: ignore[arg-type]  # native dtypes: no copy
    if name is not None:
        return name
    dt = np.dtype(dtype)
    if dt.kind in ("O", "S", "U"):
        return "BYTES"
    try:
        return _KSERVE[dt.newbyteorder("=")]
    except KeyError:
        raise InvalidInput(f"numpy dtype {dt} has no KServe datatype") from None


def element_size(datatype: str) -> int | None:
    """Bytes per element in the binary extension; None for BYTES (length-prefixed)."""
    if datatype == "BYTES":
        return None
    return numpy_dtype(datatype).itemsize


def not_a_tensor(name: str, type_text: str) -> str:
    """Why a model input or output that is a sequence or map (not a tensor) cannot be
    served, and for scikit-learn's ZipMap (probabilities as a list of dicts) how to
    export the model without it."""
    message = f"{name!r} is {type_text}, not a tensor: KServe v2 carries tensors only"
    if "map" in type_text:
        message += (
            "; a scikit-learn classifier exported by skl2onnx ends in a ZipMap that turns "
            "the probabilities into a list of dicts: export it without one, "
            "skl2onnx.to_onnx(model, X, options={'zipmap': False}), and the probabilities "
            "come out as one FP32 tensor"
        )
    return message
