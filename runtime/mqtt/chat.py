"""Chat over MQTT: an OpenAI chat request in, a chat completion out (or, with
``"stream": true``, each chunk in order to the response topic, then the final message).
Uses runtime.codecs.openai, the same codec as the HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.mqtt.bridge import Job, MqttBridge


async def run_chat(bridge: MqttBridge, job: Job) -> None:
    bridge._finish(job, codec.error_body("not_implemented", "chat over MQTT is not ready yet"))
