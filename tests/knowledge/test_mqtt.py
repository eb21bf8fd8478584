"""Knowledge over MQTT with a real Mosquitto: ``{prefix}/knowledge/{pack}/search`` answers
the HTTP search's page in the reply envelope; a chat on ``.../chat`` naming a pack answers
with citations; an unknown pack is ``not_found``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.catalog import Store
from runtime.knowledge.library import KnowledgeLibrary
from runtime.mqtt.bridge import MqttBridge
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from tests.support.loaders import box_loader, make_box
from tests.support.loop_thread import LoopThread
from tests.support.minilm import APP
from tests.support.mosquitto import running_broker
from tests.support.mqtt_bridge import site_settings
from tests.support.mqtt_client import Requester
from tests.support.prereq import need_module
from tests.support.text_models import write_text_package

pytestmark = [pytest.mark.slow, pytest.mark.mqtt]
PREFIX = "headframe/mine/n1"


@pytest.fixture(scope="module")
def bridge(packs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    need_module("llama_cpp")
    tmp = tmp_path_factory.mktemp("mqtt-knowledge")
    text = write_text_package(tmp / "text", variants=(("tiny-f32", "tiny", "f32"),))
    with running_broker(tmp / "broker") as broker, LoopThread() as loop:

        async def start() -> tuple[InferenceService, MqttBridge]:
            box = make_box(tmp / "box")
            service = InferenceService(box_loader(box))
            changes = ChangePath(service, lambda: box)
            await service.add(Store(packs.store).load(APP))
            await service.add(text)
            library = KnowledgeLibrary(packs.store, service)
            library.refresh()
            b = MqttBridge(site_settings(broker), service, changes=changes, info=lambda: {},
                           state_dir=Path(tmp), knowledge=library)  # fmt: skip
            b.start()
            return service, b

        service, b = loop.call(start(), 120)
        assert b.conn.wait_subscribed(10)
        try:
            yield broker
        finally:
            loop.call(b.stop(), 30)
            loop.call(service.close(), 30)


def _ask(broker: Any, topic: str, body: dict[str, Any], corr: bytes) -> dict[str, Any]:
    with Requester(broker.host, broker.port) as req:
        req.request(topic, body, correlation=corr)
        assert req.wait_for(lambda r: r.replies(corr), timeout=60)
        return req.replies(corr)[-1]


def test_search_over_mqtt(bridge: Any) -> None:
    body = {"query": "What torque for the main bearing bolts?", "max_num_results": 2}
    reply = _ask(bridge, f"{PREFIX}/knowledge/manuals/search", body, b"s1")
    assert reply["status"] == "ok"
    page = reply["data"]
    assert page["object"] == "vector_store.search_results.page"
    assert (
        page["data"][0]["attributes"]["page"] == 2
        and "450 Nm" in page["data"][0]["content"][0]["text"]
    )


def test_unknown_pack_and_bad_body(bridge: Any) -> None:
    reply = _ask(bridge, f"{PREFIX}/knowledge/nope/search", {"query": "x"}, b"s2")
    assert reply["status"] == "error" and reply["error"]["code"] == "not_found"
    reply = _ask(bridge, f"{PREFIX}/knowledge/manuals/search", {"query": ""}, b"s3")
    assert reply["status"] == "error" and reply["error"]["code"] == "invalid_input"


def test_grounded_chat_over_mqtt(bridge: Any) -> None:
    question = {"role": "user", "content": "What does error code E-4711 mean?"}
    body = {"max_tokens": 4, "knowledge": ["manuals"], "messages": [question]}
    reply = _ask(bridge, f"{PREFIX}/models/assistant/chat", body, b"c1")
    assert reply["status"] == "ok", reply
    assert reply["data"]["citations"][0]["page"] == 5
