"""Chat over MQTT: an OpenAI chat request in, a ``chat.completion`` out.

With ``"stream": true`` every ``chat.completion.chunk`` goes to the response topic in
order (each in the usual envelope, each buffered like any reply), then one final
message holding the whole ``chat.completion``; a subscriber tells them apart by
``data.object``. Uses runtime.codecs.openai, the same codec as the HTTP API, so
``response_format`` and ``tools`` work here as they do over HTTP (a tool call arrives as
``tool_calls`` in the message or in one chunk). ``system_fingerprint`` is the serving
variant's id, as over HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.backends.base import GenerationChunk
from runtime.errors import HeadframeError, InvalidInput
from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.mqtt.jobs import Job
    from runtime.mqtt.ports import Limits, MqttService, Replier
    from runtime.service import TextAnswer


async def run_chat(
    service: MqttService, job: Job, limits: Limits, replier: Replier, grounding: Any = None
) -> None:
    """Answer one chat request through ``replier`` (chunks, then the completion), and
    finish it; a HeadframeError is answered as an error envelope. ``grounding``
    (runtime.knowledge.grounding.Grounding) answers a request that names knowledge packs,
    with ``citations`` on the completion, as over HTTP."""
    from runtime.codecs import openai as oai

    app = job.route.name
    answer: TextAnswer | None = None
    try:
        doc = codec.parse_json_object(
            job.payload,
            max_bytes=limits.max_bytes,
            max_depth=limits.max_depth,
        )
        doc.setdefault("model", app)  # the topic names the application already
        request = oai.parse_chat(doc)
        replay, extra = None, None
        if request.knowledge is not None:
            if grounding is None:
                raise InvalidInput("knowledge: this box serves no knowledge packs")
            grounded = await grounding.ground(service, request, "mqtt")
            request, replay, extra = grounded.request, grounded.replay_answer(), grounded.extra
        generation = await oai.to_generation_off_loop(request)
        tools = request.tool_plan()
        answer = replay or await service.generate(app, generation, protocol="mqtt")
        enc = oai.StreamEncoder(
            "chat",
            app,
            include_usage=request.include_usage,
            fingerprint=answer.variant,  # the variant producing this answer, as over HTTP
            tools=tools,
        )
        chunks: list[GenerationChunk] = []
        if request.stream:
            for obj in enc.start():
                replier.send(job, codec.ok_body(obj), answer)
        async for chunk in answer.chunks:
            chunks.append(chunk)
            if request.stream:
                for obj in enc.encode(chunk):
                    replier.send(job, codec.ok_body(obj), answer)
        completion = enc.response(chunks)
        if extra is not None:
            completion.update(extra("".join(c.text for c in chunks)))
        body = codec.ok_body(completion)
    except HeadframeError as e:
        replier.rejected(job, e)
        replier.finish(job, codec.error_from(e), answer)
        return
    replier.finish(job, body, answer)
