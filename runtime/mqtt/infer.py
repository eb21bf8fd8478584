"""Tensor inference over MQTT: a KServe v2 JSON request in, the v2 JSON response out,
through runtime.codecs.kserve (the HTTP codec) and ``service.infer``. The cheap payload
checks run first; the body is then parsed once, by the codec.

A message whose MQTT v5 Content Type is image/jpeg or image/png is one picture, raw bytes
(runtime.codecs.images, as an HTTP body with that Content-Type); the reply is the same."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from runtime.errors import HeadframeError
from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.mqtt.bridge import Job, MqttBridge


async def run_infer(bridge: MqttBridge, job: Job) -> bytes:
    """The reply body for one infer request (an error envelope on any HeadframeError)."""
    from runtime.codecs.images import is_picture, media_type, picture_request
    from runtime.codecs.kserve import (
        RequestedOutput,
        decode_infer_request,
        encode_infer_response,
    )

    app = job.route.name
    try:
        version = None
        if is_picture(job.content_type):
            codec.check_size(job.payload, max_bytes=bridge.settings.max_payload_bytes)
            meta = bridge.service.slot(app).package.meta
            request = picture_request(app, meta, media_type(job.content_type), job.payload)
        else:
            codec.check_payload(
                job.payload,
                max_bytes=bridge.settings.max_payload_bytes,
                max_depth=bridge.settings.max_json_depth,
            )
            request = decode_infer_request(job.payload, None)  # parsed once, here
            if b'"model_version"' in job.payload:  # HTTP has it in the URL; MQTT in the body
                v = orjson.loads(job.payload).get("model_version")
                version = v if isinstance(v, str) else None
        outputs = await bridge.service.infer(
            app, request.inputs, version=version, outputs=request.output_names, protocol="mqtt"
        )
        requested = (
            [RequestedOutput(o.name, classification=o.classification) for o in request.outputs]
            if request.outputs
            else None
        )
        labels = bridge.service.slot(app).package.meta.labels
        body, _ = encode_infer_response(
            app,
            bridge._version(app),
            outputs,
            request_id=request.id,
            requested=requested,
            labels=labels,
        )
        return codec.ok_body_raw(body)
    except HeadframeError as e:
        bridge.counters[f"error_{e.code}"] += 1
        return codec.error_from(e)
