"""KServe v2 infer requests that must be refused, for the linear package of
tests.support.serving_models: (what, body, headers, status, a phrase of the error). Both
infer entry points must refuse each the same way (tests/e2e/test_infer_parity.py)."""

from __future__ import annotations

import orjson

_LIE = orjson.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                                 "parameters": {"binary_data_size": 256}}]})  # fmt: skip
BAD_REQUESTS = [
    ("malformed JSON", b'{"inputs": [', {}, 400, "not valid JSON"),
    ("non-UTF-8", b'{"inputs": [{"name": "\xff\xfe\xfa"}]}', {}, 400, "not valid JSON"),
    (
        "wrong shape",
        orjson.dumps(
            {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
        ),
        {},
        400,
        "expects [-1, 64]",
    ),
    (
        "wrong datatype",
        orjson.dumps(
            {
                "inputs": [
                    {"name": "pixels", "datatype": "INT32", "shape": [1, 64], "data": [1] * 64}
                ]
            }
        ),
        {},
        400,
        "datatype INT32, the model expects FP32",
    ),
    (
        "missing input",
        orjson.dumps(
            {"inputs": [{"name": "other", "datatype": "FP32", "shape": [1], "data": [1]}]}
        ),
        {},
        400,
        "unknown input 'other'",
    ),
    (
        "lying header length",
        b'{"inputs": []}',
        {"Inference-Header-Content-Length": "9999"},
        400,
        "only 14 bytes",
    ),
    (
        "lying binary size",
        _LIE + b"\0" * 100,
        {"Inference-Header-Content-Length": str(len(_LIE))},
        400,
        "runs past the end",
    ),
    (
        "header length not a number",
        b"{}",
        {"Inference-Header-Content-Length": "x"},
        400,
        "not a number",
    ),
    ("huge body", b"[" + b"1," * 200_000 + b"1]", {}, 413, "over the limit"),
]
