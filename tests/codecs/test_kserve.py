"""The KServe v2 codec: every datatype in JSON and binary form, and headers that lie."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from runtime.codecs.kserve import (
    RequestedOutput,
    decode_infer_request,
    encode_infer_response,
)
from runtime.errors import InvalidInput

SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False]]),
    "UINT8": np.array([[0, 255]], np.uint8),
    "UINT16": np.array([[0, 65535]], np.uint16),
    "UINT32": np.array([[0, 2**32 - 1]], np.uint32),
    "UINT64": np.array([[0, 2**63]], np.uint64),
    "INT8": np.array([[-128, 127]], np.int8),
    "INT16": np.array([[-(2**15), 2**15 - 1]], np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1]], np.int32),
    "INT64": np.array([[-(2**62), 2**62]], np.int64),
    "FP16": np.array([[0.5, -65504.0]], np.float16),
    "FP32": np.array([[1.5, -2.25]], np.float32),
    "FP64": np.array([[1e-300, 3.0]], np.float64),
    "BYTES": np.array([[b"caf\xc3\xa9", b""]], dtype=object),
}


def _binary_body(tensors: dict[str, tuple[str, np.ndarray]]) -> tuple[bytes, int]:
    """Encode a request the way tritonclient does: JSON header then raw tensors."""
    _, header_len = encode_infer_response("m", None, {}, binary_default=True)
    body, header_len = encode_infer_response(
        "m", None, {k: v for k, (_, v) in tensors.items()}, binary_default=True
    )
    header = orjson.loads(body[:header_len])
    doc = {"inputs": header["outputs"]}
    head = orjson.dumps(doc)
    return head + body[header_len:], len(head)


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_json_round_trip_every_datatype(datatype: str) -> None:
    arr = SAMPLES[datatype]
    body, header_len = encode_infer_response("m", "1", {"x": arr})
    assert header_len is None
    doc = orjson.loads(body)
    assert doc["outputs"][0]["datatype"] == datatype
    req = {"inputs": [{"name": "x", **{k: doc["outputs"][0][k] for k in ("datatype", "shape")},
                       "data": doc["outputs"][0]["data"]}]}  # fmt: skip
    got = decode_infer_request(orjson.dumps(req), None).inputs["x"]
    assert got.dtype == arr.dtype and got.shape == arr.shape
    assert got.tolist() == arr.tolist()


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_binary_round_trip_every_datatype(datatype: str) -> None:
    arr = SAMPLES[datatype]
    body, header_len = _binary_body({"x": (datatype, arr)})
    got = decode_infer_request(body, header_len).inputs["x"]
    assert got.dtype == arr.dtype and got.shape == arr.shape
    assert got.tolist() == arr.tolist()


def test_nested_and_flat_data_decode_alike() -> None:
    flat = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}]}
    nested = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2],
                          "data": [[1, 2], [3, 4]]}]}  # fmt: skip
    a = decode_infer_request(orjson.dumps(flat), None).inputs["x"]
    b = decode_infer_request(orjson.dumps(nested), None).inputs["x"]
    assert a.tolist() == b.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_requested_outputs_and_parameters() -> None:
    doc = {
        "id": "r1",
        "parameters": {"binary_data_output": True, "priority": 3},
        "inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [7]}],
        "outputs": [{"name": "b", "parameters": {"binary_data": False}}, {"name": "a"}],
    }
    req = decode_infer_request(orjson.dumps(doc), None)
    assert req.id == "r1" and req.parameters["priority"] == 3 and req.binary_output
    assert req.outputs == [RequestedOutput("b", False), RequestedOutput("a", None)]
    out = {"a": np.arange(3, dtype=np.float32), "b": np.array([1], np.int64)}
    body, header_len = encode_infer_response(
        "m", "1", out, request_id="r1", requested=req.outputs, binary_default=req.binary_output
    )
    assert header_len is not None
    head = orjson.loads(body[:header_len])
    assert head["id"] == "r1"
    assert [o["name"] for o in head["outputs"]] == ["b", "a"]
    assert head["outputs"][0]["data"] == [1]
    assert head["outputs"][1]["parameters"]["binary_data_size"] == 12
    assert np.frombuffer(body[header_len:], np.float32).tolist() == [0.0, 1.0, 2.0]


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc)


X = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}


@pytest.mark.parametrize(
    ("body", "header_len", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b'{"inputs": [{"name": "\xff\xfe"}]}', None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (_json({"inputs": []}), None, "non-empty list"),
        (_json({"inputs": [{**X, "datatype": "FP33"}]}), None, "unknown datatype 'FP33'"),
        (_json({"inputs": [{**X, "shape": [1, 3]}]}), None, "needs 3 elements, got 2"),
        (_json({"inputs": [{**X, "shape": [-1, 2]}]}), None, "non-negative integers"),
        (_json({"inputs": [{**X, "data": ["a", "b"]}]}), None, "must be numbers"),
        (_json({"inputs": [{**X, "data": [[1], [2, 3]]}]}), None, "not a regular nested list"),
        (_json({"inputs": [{**X, "datatype": "INT8", "data": [1, 300]}]}), None, "out of range"),
        (_json({"inputs": [{**X, "datatype": "INT32", "data": [1.5, 2]}]}), None, "integers"),
        (_json({"inputs": [X, X]}), None, "appears twice"),
        (
            _json({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}),
            None,
            "needs 'data'",
        ),
    ],
)
def test_malformed_json_requests(body: bytes, header_len: int | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_infer_request(body, header_len)


def test_binary_headers_that_lie_about_lengths() -> None:
    arr = np.arange(4, dtype=np.float32).reshape(1, 4)
    body, hl = _binary_body({"x": ("FP32", arr)})
    with pytest.raises(InvalidInput, match="only"):
        decode_infer_request(body, len(body) + 10)  # header length beyond the body
    with pytest.raises(InvalidInput, match="not valid JSON"):
        decode_infer_request(body, hl - 3)  # header cut short
    with pytest.raises(InvalidInput, match="runs past the end"):
        decode_infer_request(body[:-4], hl)  # binary part truncated
    with pytest.raises(InvalidInput, match="bytes after the declared"):
        decode_infer_request(body + b"\0\0\0\0", hl)  # stray trailing bytes
    head = orjson.loads(body[:hl])
    head["inputs"][0]["parameters"]["binary_data_size"] = 12
    lie = orjson.dumps(head)
    with pytest.raises(InvalidInput, match="needs 16"):
        decode_infer_request(lie + body[hl:hl + 12], len(lie))  # fmt: skip
    # a BYTES element claiming more bytes than the tensor holds
    spec = {"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}
    head2 = orjson.dumps({"inputs": [spec]})
    blob = struct.pack("<I", 1000) + b"ab"
    with pytest.raises(InvalidInput, match="claims 1000 bytes"):
        decode_infer_request(head2 + blob, len(head2))
