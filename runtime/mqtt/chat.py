"""Chat over MQTT: an OpenAI chat request in, a ``chat.completion`` out.

With ``"stream": true`` every ``chat.completion.chunk`` goes to the response topic in
order (each in the usual envelope, each buffered like any reply), then one final
message holding the whole ``chat.completion``; a subscriber tells them apart by
``data.object``. Uses runtime.codecs.openai, the same codec as the HTTP API, so
``response_format`` and ``tools`` work here as they do over HTTP (a tool call arrives as
``tool_calls`` in the message or in one chunk).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.backends.base import GenerationChunk
from runtime.errors import HeadframeError
from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.mqtt.bridge import Job, MqttBridge


async def run_chat(bridge: MqttBridge, job: Job) -> None:
    from runtime.codecs import openai as oai

    app = job.route.name
    try:
        doc = codec.parse_json_object(
            job.payload,
            max_bytes=bridge.settings.max_payload_bytes,
            max_depth=bridge.settings.max_json_depth,
        )
        doc.setdefault("model", app)  # the topic names the application already
        request = oai.parse_chat(doc)
        generation = request.to_generation()
        enc = oai.StreamEncoder(
            "chat", app, include_usage=request.include_usage, tools=request.tool_plan()
        )
        chunks: list[GenerationChunk] = []
        if request.stream:
            for obj in enc.start():
                bridge.send_reply(job, codec.ok_body(obj))
        async for chunk in bridge.service.generate(app, generation, protocol="mqtt"):
            chunks.append(chunk)
            if request.stream:
                for obj in enc.encode(chunk):
                    bridge.send_reply(job, codec.ok_body(obj))
        body = codec.ok_body(enc.response(chunks))
    except HeadframeError as e:
        bridge.counters[f"error_{e.code}"] += 1
        body = codec.error_from(e)
    bridge._finish(job, body)
