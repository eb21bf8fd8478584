"""Each error carries its HTTP status: one class, one status, on every route.

The classes of runtime.errors say their own status and Retry-After; the KServe routes,
the admin route and the OpenAI routes all answer with them (there used to be two tables,
and a variant that could not load was 409 on one route and 500 on the other). Every
error body under /v1/ has OpenAI's one shape, the guard's included.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from runtime import errors
from runtime.api.errors import error_parts
from runtime.api.openai import error_response
from runtime.catalog import Store
from runtime.codecs.openai import error_for
from runtime.config import ApiSettings, Settings
from runtime.errors import HeadframeError as Error
from tests.support.http_server import ServerHandle, serving
from tests.support.loaders import ort_loader
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
CLASSES = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Error)]
GOOD = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [1] * 64}]}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_route_answers_an_error_with_its_own_status(cls: type[Error]) -> None:
    exc = cls("went wrong")
    kserve_status, kserve_headers, _ = error_parts("/v2/models/a/infer", exc)
    openai = error_response(exc)
    assert kserve_status == openai.status_code == exc.status
    assert kserve_headers.get("Retry-After") == openai.headers.get("retry-after")
    assert ("Retry-After" in kserve_headers) == (exc.retry_after_s is not None)
    assert orjson.loads(openai.body) == error_for(exc)


def test_the_statuses_chosen() -> None:
    chosen = {c.__name__: c("x").status for c in CLASSES}
    assert chosen == {
        "BackendLoadError": 500, "BackendUnavailable": 500, "BuildInputError": 400,
        "Busy": 429, "ConfigError": 500, "HeadframeError": 500, "ImageTooLarge": 400,
        "InferenceFailed": 500, "InvalidImage": 400, "InvalidInput": 400,
        "MetadataError": 500, "ModelNotFound": 404, "NoImageContract": 400,
        "NotReady": 503, "ProbeError": 500, "Shedding": 429, "UnsupportedImage": 400,
    }  # fmt: skip
    assert errors.Busy("x", retry_after_s=2.5).retry_after_s == 2.5
    assert errors.BackendLoadError("x").retry_after_s is None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    root = tmp_path / "store"
    write_linear_package(root)
    settings = Settings(demo=False, api=ApiSettings(tokens=["t0ken"]))
    with serving([Store(root).load(APP)], loader=ort_loader, settings=settings) as handle:
        yield handle


def test_a_variant_that_cannot_load_is_500_and_the_old_one_keeps_serving(
    server: ServerHandle,
) -> None:
    served = server.extra.slot(APP)
    other = next(v for v in served.package.variants if v.id != served.variant.id)
    other.entrypoint.write_bytes(b"not an onnx model")
    auth = {"Authorization": "Bearer t0ken"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
        r = http.post(f"/admin/models/{APP}/select", json={"variant": other.id})
        assert r.status_code == 500, r.text
        assert "retry-after" not in r.headers
        assert http.post(f"/v2/models/{APP}/infer", json=GOOD).status_code == 200
        assert server.extra.slot(APP).variant.id == served.variant.id


def test_the_guards_errors_under_v1_have_openais_shape(server: ServerHandle) -> None:
    r = httpx.post(f"{server.url}/v1/chat/completions", json={}, timeout=30)
    assert r.status_code == 401
    err: dict[str, Any] = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "authentication_error"
    r = httpx.post(f"{server.url}/v2/models/{APP}/infer", json={}, timeout=30)
    assert r.status_code == 401 and isinstance(r.json()["error"], str)
