"""Hypothesis-driven bad payloads: the decoder only ever says InvalidInput, and the live
bridge answers every one and keeps serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.catalog import load_package
from runtime.codecs.kserve import decode_infer_request
from runtime.errors import InvalidInput
from runtime.mqtt.codec import parse_json_object
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings
from tests.support.mqtt_client import Requester
from tests.support.serving_models import write_linear_package

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)
tensorish = st.fixed_dictionaries(
    {
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["pixels", "x", ""]) | st.integers(),
                    "datatype": st.sampled_from(["FP32", "INT8", "BYTES", "BOOL", "NOPE"]),
                    "shape": st.lists(st.integers(-2, 70), max_size=3) | st.text(max_size=3),
                    "data": json_values,
                }
            ),
            max_size=2,
        )
    }
)
payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | tensorish.map(lambda v: json.dumps(v).encode())
)


@given(payload=payloads)
@settings(max_examples=300, deadline=None)
def test_decoder_only_ever_says_invalid_input(payload: bytes) -> None:
    try:
        doc = parse_json_object(payload, max_bytes=4096, max_depth=8)
        decode_infer_request(json.dumps(doc).encode(), None)
    except InvalidInput as e:
        assert e.message


@pytest.mark.mqtt
def test_live_bridge_answers_every_bad_payload(broker: Mosquitto, tmp_path: Path) -> None:
    write_linear_package(tmp_path / "store")
    pkg = load_package(tmp_path / "store" / "part-id-reader" / "1.0.0")
    s = site_settings(broker, max_json_depth=8)
    topic = "headframe/mine/n1/models/part-id-reader/infer"
    with BridgeHarness(s, [pkg], tmp_path / "state") as h, Requester(broker.host, broker.port) as r:
        assert h.wait_connected()
        sent: list[bytes] = []

        @given(payload=payloads)
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def send(payload: bytes) -> None:
            corr = b"%d" % len(sent)
            sent.append(corr)
            r.request(topic, payload, correlation=corr)

        send()
        r.request(topic, infer_body(), correlation=b"still-serving")
        assert r.wait_for(lambda r: all(r.by_corr.get(c) for c in [*sent, b"still-serving"]), 30)
        replies: list[Any] = [r.replies(c) for c in sent]
    assert all(len(x) == 1 and x[0]["status"] in ("ok", "error") for x in replies)
    assert r.replies(b"still-serving")[0]["status"] == "ok"
