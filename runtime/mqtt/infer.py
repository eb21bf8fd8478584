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
    from runtime.mqtt.jobs import Job
    from runtime.mqtt.ports import Limits, MqttService, Replier


async def run_infer(service: MqttService, job: Job, limits: Limits, replier: Replier) -> bytes:
    """The reply body for one infer request (an error envelope on any HeadframeError,
    which ``replier.rejected`` counts and logs)."""
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
            codec.check_size(job.payload, max_bytes=limits.max_bytes)
            meta = service.slot(app).package.meta
            request = picture_request(app, meta, media_type(job.content_type), job.payload)
        else:
            codec.check_payload(
                job.payload,
                max_bytes=limits.max_bytes,
                max_depth=limits.max_depth,
            )
            request = decode_infer_request(job.payload, None)  # parsed once, here
            if b'"model_version"' in job.payload:  # HTTP has it in the URL; MQTT in the body
                v = orjson.loads(job.payload).get("model_version")
                version = v if isinstance(v, str) else None
        outputs = await service.infer(
            app, request.inputs, version=version, outputs=request.output_names, protocol="mqtt"
        )
        requested = (
            [RequestedOutput(o.name, classification=o.classification) for o in request.outputs]
            if request.outputs
            else None
        )
        package = service.slot(app).package
        body, _ = encode_infer_response(
            app,
            str(package.version),
            outputs,
            request_id=request.id,
            requested=requested,
            labels=package.meta.labels,
        )
        return codec.ok_body_raw(body)
    except HeadframeError as e:
        replier.rejected(job, e)
        return codec.error_from(e)
