"""Pictures over HTTP on a real loopback server: tritonclient's BYTES (binary and JSON
base64), curl-style raw bodies, Triton's classification for top-k, and every bad picture
answered 400 with its code while the server keeps serving."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from runtime.catalog import Store
from runtime.config import ApiSettings, Settings
from runtime.demo.pictures import IMAGE_CONTRACT
from tests.support.http_server import ServerHandle, serving
from tests.support.image_models import (
    CAMERA,
    LABELS,
    cmyk_jpeg,
    digit_picture,
    encode,
    noise_picture,
    raw_png,
    reference_tensor,
    write_camera_package,
    write_picture_package,
)
from tests.support.loaders import ort_loader
from tests.support.prereq import need_tool
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
DIGITS = np.random.default_rng(5).integers(0, 17, (4, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    store = tmp_path_factory.mktemp("images") / "store"
    write_picture_package(store)
    write_camera_package(store)
    write_linear_package(store, app="plain", variants=("small",))

    packages = [Store(store).load(app) for app in ("part-id-reader", "camera", "plain")]
    settings = Settings(demo=False, api=ApiSettings(max_body_bytes=4 * 1024 * 1024))
    with serving(packages, loader=ort_loader, settings=settings, workers=2) as handle:
        yield handle


def _in_process(server: ServerHandle, app: str, inputs: dict[str, np.ndarray]) -> Any:
    return server.call(lambda: server.extra.infer(app, inputs)).outputs


def _pictures() -> list[bytes]:
    return [digit_picture(d, scale=4 + i) for i, d in enumerate(DIGITS)]


def _as_tensor(pictures: list[bytes]) -> np.ndarray:
    """What the demo's contract (the one write_picture_package declares) makes of them."""
    return np.stack([reference_tensor(p, IMAGE_CONTRACT) for p in pictures]).astype(np.float32)


def _bytes_input(name: str, pictures: list[bytes], binary: bool) -> triton.InferInput:
    data = pictures if binary else [base64.b64encode(p) for p in pictures]
    arr = np.empty(len(data), dtype=object)
    arr[:] = data
    inp = triton.InferInput(name, [len(data)], "BYTES")
    inp.set_data_from_numpy(arr, binary_data=binary)
    return inp


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json-base64"])
def test_tritonclient_bytes_equal_the_reference_tensor(server: ServerHandle, binary: bool) -> None:
    pictures = _pictures()
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    result = client.infer(APP, [_bytes_input("pixels", pictures, binary)])
    got = result.as_numpy("probabilities")
    want = _in_process(server, APP, {"pixels": _as_tensor(pictures)})["probabilities"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The reference tensor is the digits themselves, up to 8-bit grey (16/255 a step).
    np.testing.assert_allclose(_as_tensor(pictures), DIGITS, atol=16 / 255 / 2 + 1e-4)


def test_the_picture_becomes_the_contracts_tensor(server: ServerHandle) -> None:
    # An Identity model hands back what the contract made: BGR, letterbox, NCHW, normalised.
    # (A JPEG under twice the size it is resized to: one over it decodes smaller, in the DCT.)
    pictures = [encode(noise_picture(9, 20, seed=1)), encode(noise_picture(5, 7, seed=2), "JPEG")]
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    got = client.infer("camera", [_bytes_input("image", pictures, True)]).as_numpy("image_out")
    want = np.stack([reference_tensor(p, CAMERA) for p in pictures])
    assert got.shape == (2, 3, 4, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_model_metadata_shows_the_contract(server: ServerHandle) -> None:
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    meta = client.get_model_metadata(APP)
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    images = meta["parameters"]["images"]
    assert images["pixels"]["width"] == 8 and images["pixels"]["color"] == "GRAY"
    assert "images" not in client.get_model_metadata("plain")["parameters"]


def test_top_k_with_names_through_tritonclient(server: ServerHandle) -> None:
    pictures = _pictures()
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    out = triton.InferRequestedOutput("probabilities", class_count=3)
    got = client.infer(APP, [_bytes_input("pixels", pictures, True)], outputs=[out])
    ranked = got.as_numpy("probabilities")
    assert ranked.shape == (4, 3)
    probs = _in_process(server, APP, {"pixels": _as_tensor(pictures)})["probabilities"]
    for row, scores in zip(ranked, probs, strict=True):
        parts = [item.decode().split(":") for item in row]
        best = np.argsort(-scores)[:3]
        assert [int(p[1]) for p in parts] == best.tolist()
        assert [p[2] for p in parts] == [LABELS[i] for i in best]
        np.testing.assert_allclose([float(p[0]) for p in parts], scores[best], atol=2e-6)


def test_raw_png_body_answers_json_with_the_top_3(server: ServerHandle) -> None:
    picture = _pictures()[0]
    r = httpx.post(
        f"{server.url}/v2/models/{APP}/infer",
        content=picture,
        headers={"content-type": "image/png"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    out = r.json()["outputs"][0]
    assert (out["name"], out["datatype"], out["shape"]) == ("probabilities", "BYTES", [1, 3])
    probs = _in_process(server, APP, {"pixels": _as_tensor([picture])})["probabilities"][0]
    assert out["data"][0].split(":")[2] == LABELS[int(np.argmax(probs))]


def test_curl_data_binary(server: ServerHandle, tmp_path: Path) -> None:
    need_tool("curl")
    picture = _pictures()[1]
    (tmp_path / "digit.png").write_bytes(picture)
    out = subprocess.run(
        ["curl", "-s", "--data-binary", "@digit.png", "-H", "content-type: image/png",
         f"{server.url}/v2/models/{APP}/versions/1.0.0/infer"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    probs = _in_process(server, APP, {"pixels": _as_tensor([picture])})["probabilities"][0]
    best = json.loads(out.stdout)["outputs"][0]["data"][0]
    assert best.split(":")[1:] == [str(np.argmax(probs)), LABELS[int(np.argmax(probs))]]


BAD = [
    ("image/png", b"<html>not a picture</html>", "not a JPEG or PNG picture"),
    ("image/png", b"", "empty body: send the image/png bytes"),
    ("image/jpeg", encode(noise_picture(50, 50), "JPEG")[:-400], "JPEG is truncated or corrupt"),
    ("image/jpeg", cmyk_jpeg(), "JPEG in CMYK: send 8-bit RGB or greyscale"),
    ("image/png", raw_png(8, 8, bit_depth=16, color_type=2), "16-bit PNG"),
    ("image/png", raw_png(7000, 7000, color_type=2), "49000000 pixels is over the 40000000"),
    ("image/gif", b"GIF89a", "image/gif is not taken: send image/jpeg or image/png"),
]


@pytest.mark.parametrize(
    ("media", "body", "words"), BAD, ids=["text", "empty", "cut", "cmyk", "png16", "bomb", "gif"]
)
def test_bad_pictures_get_400_and_the_server_keeps_serving(
    server: ServerHandle, media: str, body: bytes, words: str
) -> None:
    url = f"{server.url}/v2/models/{APP}/infer"
    r = httpx.post(url, content=body, headers={"content-type": media}, timeout=30)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]
    ok = httpx.post(url, content=_pictures()[0], headers={"content-type": "image/png"}, timeout=10)
    assert ok.status_code == 200


def test_pictures_for_a_model_without_a_contract(server: ServerHandle) -> None:
    url = f"{server.url}/v2/models/plain/infer"
    r = httpx.post(url, content=_pictures()[0], headers={"content-type": "image/png"}, timeout=10)
    assert r.status_code == 400
    assert (
        r.json()["error"]
        == "plain takes no pictures: its package declares no [images.<input>] contract"
    )
    client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
    with pytest.raises(
        triton.InferenceServerException, match=r"no image contract.*FP32 \[-1, 64\]"
    ):
        client.infer("plain", [_bytes_input("pixels", _pictures(), True)])
    # Tensors still work there, and pictures still work where there is a contract.
    assert client.infer("plain", [_fp32(DIGITS)]).as_numpy("probabilities").shape == (4, 10)


def _fp32(x: np.ndarray) -> triton.InferInput:
    inp = triton.InferInput("pixels", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return inp
