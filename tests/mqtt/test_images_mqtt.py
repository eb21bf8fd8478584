"""Pictures over MQTT: a real Mosquitto, messages whose MQTT v5 Content Type is image/png or
image/jpeg carrying the raw bytes, the usual reply envelope, and every bad picture."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from runtime.demo.pictures import IMAGE_CONTRACT
from tests.support.image_models import (
    LABELS,
    cmyk_jpeg,
    digit_picture,
    encode,
    noise_picture,
    raw_png,
    reference_tensor,
    write_picture_package,
)
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body
from tests.support.mqtt_client import Requester
from tests.support.prereq import need_tool
from tests.support.serving_models import write_linear_package

pytestmark = pytest.mark.mqtt
PREFIX = "headframe/mine/n1"
INFER = f"{PREFIX}/models/part-id-reader/infer"
DIGIT = np.random.default_rng(11).integers(0, 17, 64).astype(np.float32)
LIMIT = 256 * 1024


@pytest.fixture
def harness(start_bridge: Callable[..., BridgeHarness], tmp_path: Path) -> BridgeHarness:
    store = tmp_path / "store"
    packages = [write_picture_package(store), write_linear_package(store, app="plain")]
    return start_bridge(packages, max_payload_bytes=LIMIT)


def _best(harness: BridgeHarness, picture: bytes) -> int:
    assert harness.service is not None
    tensor = reference_tensor(picture, IMAGE_CONTRACT).astype(np.float32)[None]
    out = harness.call(harness.service.infer("part-id-reader", {"pixels": tensor}))
    return int(np.argmax(out.outputs["probabilities"][0]))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_picture_message_gets_the_top_3(
    broker: Mosquitto, harness: BridgeHarness, fmt: str
) -> None:
    paper = 255 - np.rint(DIGIT.reshape(8, 8) * 255 / 16)
    picture = encode(np.kron(paper, np.ones((6, 6))).astype(np.uint8), fmt, quality=95)
    media = f"image/{fmt.lower()}"
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, picture, correlation=b"pic", content_type=media)
        assert r.wait_for(lambda r: r.by_corr.get(b"pic"))
        reply = r.replies(b"pic")[0]
    assert reply["status"] == "ok", reply
    out = reply["data"]["outputs"][0]
    assert (out["name"], out["datatype"], out["shape"]) == ("probabilities", "BYTES", [1, 3])
    best = _best(harness, picture) if fmt == "PNG" else None
    score, index, label = out["data"][0].split(":")
    assert label == LABELS[int(index)] and 0 < float(score) <= 1
    if best is not None:
        assert int(index) == best


def test_json_requests_still_work_beside_pictures(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, infer_body(seed=2), correlation=b"json")
        assert r.wait_for(lambda r: r.by_corr.get(b"json"))
        reply = r.replies(b"json")[0]
    assert reply["status"] == "ok"
    assert reply["data"]["outputs"][0]["datatype"] == "FP32"


BAD = [
    ("image/png", b"\x00\x01 not a picture", "invalid_image"),
    ("image/jpeg", encode(noise_picture(60, 60), "JPEG")[:-500], "invalid_image"),
    ("image/jpeg", cmyk_jpeg(), "unsupported_image"),
    ("image/png", raw_png(6, 6, bit_depth=16, color_type=0), "unsupported_image"),
    ("image/png", raw_png(7000, 7000, color_type=2), "image_too_large"),
    ("image/png", encode(noise_picture(300, 300)), "payload_too_large"),  # 270 KB of noise
    ("image/webp", b"RIFF....WEBP", "invalid_image"),
]


@pytest.mark.parametrize(
    ("media", "body", "code"), BAD, ids=["text", "cut", "cmyk", "png16", "bomb", "big", "webp"]
)
def test_bad_pictures_get_an_error_envelope_and_the_bridge_keeps_serving(
    broker: Mosquitto, harness: BridgeHarness, media: str, body: bytes, code: str
) -> None:
    assert code != "payload_too_large" or len(body) > LIMIT
    with Requester(broker.host, broker.port) as r:
        r.request(INFER, body, correlation=b"bad", content_type=media)
        r.request(INFER, digit_picture(DIGIT), correlation=b"good", content_type="image/png")
        assert r.wait_for(lambda r: r.by_corr.get(b"bad") and r.by_corr.get(b"good"))
        bad, good = r.replies(b"bad")[0], r.replies(b"good")[0]
    assert bad["status"] == "error" and bad["error"]["code"] == code, bad
    assert good["status"] == "ok"


def test_a_picture_for_a_model_without_a_contract(
    broker: Mosquitto, harness: BridgeHarness
) -> None:
    with Requester(broker.host, broker.port) as r:
        r.request(
            f"{PREFIX}/models/plain/infer",
            digit_picture(DIGIT),
            correlation=b"x",
            content_type="image/png",
        )
        assert r.wait_for(lambda r: r.by_corr.get(b"x"))
        reply = r.replies(b"x")[0]
    assert reply["error"]["code"] == "no_image_contract"
    assert "takes no pictures" in reply["error"]["message"]


def test_mosquitto_pub_file(broker: Mosquitto, harness: BridgeHarness, tmp_path: Path) -> None:
    need_tool("mosquitto_pub")
    picture = digit_picture(DIGIT)
    (tmp_path / "digit.png").write_bytes(picture)
    with Requester(broker.host, broker.port, subscribe=["plant/replies"]) as r:
        subprocess.run(
            ["mosquitto_pub", "-p", str(broker.port), "-V", "5", "-q", "1", "-t", INFER,
             "-D", "publish", "response-topic", "plant/replies",
             "-D", "publish", "content-type", "image/png", "-f", "digit.png"],
            cwd=tmp_path, check=True, timeout=30,
        )  # fmt: skip
        assert r.wait_for(lambda r: r.on_topic("plant/replies"))
        reply = json.loads(r.on_topic("plant/replies")[0].payload)
    assert reply["status"] == "ok"
    assert reply["data"]["outputs"][0]["data"][0].split(":")[1] == str(_best(harness, picture))
