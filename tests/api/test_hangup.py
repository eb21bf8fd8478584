"""A request whose caller has gone stops taking the model's worker (issue 25, item 4): one
KServe request with 60 big pictures kept the worker decoding for 53 s after the client's
504, and the next request waited 23.6 s. Here the caller goes twice, by the server's
504 and by disconnecting, and the next request is answered as soon as the picture being
decoded then is done. Real HTTP on loopback, the camera package's real ONNX model."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.catalog import Store
from runtime.config import ApiSettings, Settings
from tests.support.http_server import ServerHandle, serving
from tests.support.image_models import raw_png, write_camera_package
from tests.support.loaders import ort_loader

BIG = raw_png(4000, 4000, color_type=2)  # 47 KB, 16 megapixels: about half a second each
SMALL = raw_png(60, 40, color_type=2)


def _body(pictures: list[bytes]) -> dict[str, object]:
    data = [base64.b64encode(p).decode() for p in pictures]
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(data)], "data": data}]}


def _server(tmp: Path, timeout_s: float) -> Iterator[ServerHandle]:
    write_camera_package(tmp / "store")
    api = ApiSettings(request_timeout_s=timeout_s)
    settings = Settings(demo=False, api=api)
    with serving([Store(tmp / "store").load("camera")], loader=ort_loader,
                 settings=settings) as handle:  # fmt: skip
        yield handle


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[ServerHandle]:
    yield from _server(tmp_path, 1.0)


@pytest.fixture
def patient(tmp_path: Path) -> Iterator[ServerHandle]:
    yield from _server(tmp_path, 60.0)


def _next_request_s(url: str) -> float:
    t0 = time.monotonic()
    r = httpx.post(f"{url}/v2/models/camera/infer", json=_body([SMALL]), timeout=60)
    assert r.status_code == 200, r.text
    return time.monotonic() - t0


def test_after_the_servers_504_the_worker_is_free_for_the_next_request(
    impatient: ServerHandle,
) -> None:
    r = httpx.post(f"{impatient.url}/v2/models/camera/infer", json=_body([BIG] * 20), timeout=60)
    assert r.status_code == 504, r.text
    assert _next_request_s(impatient.url) < 2.5


def test_after_the_client_disconnects_the_worker_is_free_for_the_next_request(
    patient: ServerHandle,
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{patient.url}/v2/models/camera/infer", json=_body([BIG] * 20), timeout=1.0)
    assert _next_request_s(patient.url) < 2.5
