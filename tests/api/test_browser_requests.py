"""Blind requests from a browser (issue 25, item 18): a page on any site could make a
browser on the box POST a ``text/plain`` body (a "simple" request, no CORS preflight) to
the loopback API and run inference. Now a request that changes something must carry a
Content-Type the API documents for its path, and a browser's Origin must be the API's
own. Real HTTP on loopback with the real demo-shaped model; tritonclient (no
Content-Type, no Origin) and curl-style clients are unaffected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from runtime.catalog import Store
from runtime.config import Settings
from tests.support.http_server import ServerHandle, serving
from tests.support.image_models import raw_png, write_camera_package
from tests.support.loaders import ort_loader
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
BODY = json.dumps(
    {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [1.0] * 64}]}
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    store: Path = tmp_path_factory.mktemp("browser") / "store"
    write_linear_package(store)
    write_camera_package(store)
    packages = [Store(store).load(APP), Store(store).load("camera")]
    with serving(packages, loader=ort_loader, settings=Settings(demo=False)) as handle:
        yield handle


def _post(server: ServerHandle, path: str, body: str | bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)


INFER = f"/v2/models/{APP}/infer"


@pytest.mark.parametrize(
    "media", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"]
)
def test_the_simple_types_a_page_may_send_are_refused(server: ServerHandle, media: str) -> None:
    r = _post(server, INFER, BODY, **{"content-type": media})
    assert r.status_code == 415, r.text
    assert "send application/json or application/octet-stream" in r.json()["error"]
    chat = _post(server, "/v1/chat/completions", "{}", **{"content-type": media})
    assert chat.status_code == 415 and chat.json()["error"]["code"] == "unsupported_media_type"
    admin = _post(server, f"/admin/models/{APP}/select", '{"variant": "auto"}',
                  **{"content-type": media})  # fmt: skip
    assert admin.status_code == 415


def test_a_body_without_content_type_from_another_origin_is_refused(server: ServerHandle) -> None:
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{server.port + 1}"):
        r = _post(server, INFER, BODY, origin=origin)
        assert r.status_code == 403, (origin, r.text)
        assert "cross-origin request" in r.json()["error"]


def test_clients_that_are_not_browsers_and_the_apis_own_origin_are_served(
    server: ServerHandle,
) -> None:
    assert _post(server, INFER, BODY).status_code == 200  # tritonclient sends no Content-Type
    assert _post(server, INFER, BODY, **{"content-type": "application/json"}).status_code == 200
    own = _post(server, INFER, BODY, **{"content-type": "application/json",
                                          "origin": server.url})  # fmt: skip
    assert own.status_code == 200, own.text
    png = raw_png(60, 40, color_type=2)
    pic = _post(server, "/v2/models/camera/infer", png, **{"content-type": "image/png"})
    assert pic.status_code == 200, pic.text
    out = np.asarray(pic.json()["outputs"][0]["data"])
    assert out.size > 0
    gif = _post(server, "/v2/models/camera/infer", b"GIF89a", **{"content-type": "image/gif"})
    assert gif.status_code == 400 and "send image/jpeg or image/png" in gif.json()["error"]
