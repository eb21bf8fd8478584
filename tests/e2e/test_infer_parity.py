"""One infer implementation: the same requests through both entry points (the fast path
in front of the full app, and FastAPI's documented routes alone) get the same answers,
byte for byte, errors included."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import tritonclient.http as triton
from fastapi import FastAPI

from runtime.api import kserve
from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.catalog import Store
from runtime.config import Settings
from runtime.service import InferenceService
from tests.support.bad_requests import BAD_REQUESTS
from tests.support.http_server import ServerHandle, running_server

APP = "part-id-reader"


def _binary(x: np.ndarray, binary_out: bool) -> tuple[bytes, dict[str, str]]:
    inp = triton.InferInput("pixels", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    out = triton.InferRequestedOutput("probabilities", binary_data=binary_out)
    body, json_size = triton.InferenceServerClient.generate_request_body([inp], [out])
    headers = {"Content-Type": "application/octet-stream"}
    if json_size is not None:
        headers["Inference-Header-Content-Length"] = str(json_size)
    return body, headers


def _requests() -> list[tuple[str, str, bytes, dict[str, str]]]:
    x = np.random.default_rng(5).uniform(0, 16, (3, 64)).astype(np.float32)
    good = orjson.dumps(
        {"id": "r-1", "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [3, 64],
                                  "data": x.reshape(-1).tolist()}]}
    )  # fmt: skip
    path = f"/v2/models/{APP}/infer"
    reqs = [
        ("json", path, good, {"Content-Type": "application/json"}),
        ("json, one version", f"/v2/models/{APP}/versions/1.0.0/infer", good, {}),
        ("binary in, binary out", path, *_binary(x, True)),
        ("binary in, JSON out", path, *_binary(x, False)),
        ("unknown model", "/v2/models/nope/infer", good, {}),
        ("unknown version", f"/v2/models/{APP}/versions/7/infer", good, {}),
        ("JPEG for a tensor model", path, b"\xff\xd8\xff", {"Content-Type": "image/jpeg"}),
    ]
    # The guard's 413 sits outside both entry points: not an infer answer.
    reqs += [
        (what, path, body, hdrs) for what, body, hdrs, status, _ in BAD_REQUESTS if status != 413
    ]
    return reqs


@contextlib.contextmanager
def _serving(store: Path, loader: Any, *, fast_path: bool) -> Iterator[ServerHandle]:
    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(loader)
        await service.add(Store(store).load(APP))
        if fast_path:  # the daemon's app: the fast path answers infer before routing
            return create_app(
                service, settings=Settings(demo=False), context=ServerContext()
            ), service
        routes = FastAPI()  # the documented KServe routes alone, no fast path in front
        routes.include_router(kserve.router(service))
        return routes, service

    async def close(service: InferenceService) -> None:
        await service.close()

    with running_server(build, close=close) as handle:
        yield handle


def _answer(r: httpx.Response) -> tuple[int, str | None, str | None, str | None, bytes]:
    h = r.headers
    return (r.status_code, h.get("content-type"), h.get("inference-header-content-length"),
            h.get("retry-after"), r.content)  # fmt: skip


def test_fast_path_and_fastapi_routes_answer_alike(store: Path, loader: Any) -> None:
    reqs = _requests()
    answers: dict[bool, list[Any]] = {}
    for fast in (True, False):
        with _serving(store, loader, fast_path=fast) as h, httpx.Client(base_url=h.url) as http:
            answers[fast] = [
                _answer(http.post(path, content=body, headers=hdrs)) for _, path, body, hdrs in reqs
            ]
    for (what, *_), fast, routed in zip(reqs, answers[True], answers[False], strict=True):
        assert fast == routed, what
    statuses = {what: a[0] for (what, *_), a in zip(reqs, answers[True], strict=True)}
    assert statuses["json"] == statuses["binary in, binary out"] == 200
    assert statuses["unknown model"] == 404 and statuses["lying binary size"] == 400
    binary = answers[True][2]
    assert binary[1] == "application/octet-stream" and binary[2] is not None
