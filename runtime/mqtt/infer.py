"""Tensor inference over MQTT: a KServe v2 JSON request in, the v2 JSON response out,
through runtime.codecs.kserve (the HTTP codec) and ``service.infer_request``. The cheap
payload checks run first (empty, size, UTF-8); the body is then parsed once, by the codec,
which also bounds its nesting and reads its ``model_version``.

A message whose MQTT v5 Content Type is image/jpeg or image/png is one picture, raw bytes
(runtime.codecs.images, as an HTTP body with that Content Type); the reply is the same.
Who computed the reply (version, variant, reload wait) comes back with the answer: the
replier names it in the reply's user properties."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.errors import HeadframeError
from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.catalog import PackageMeta
    from runtime.codecs.kserve import InferRequest
    from runtime.mqtt.jobs import Job
    from runtime.mqtt.ports import Limits, MqttService, Replier
    from runtime.service import Answer


async def run_infer(
    service: MqttService, job: Job, limits: Limits, replier: Replier
) -> tuple[bytes, Answer | None]:
    """The reply body for one infer request and the answer behind it (an error envelope
    and None on any HeadframeError, which ``replier.rejected`` counts and logs)."""
    from runtime.codecs.images import is_picture, media_type, picture_request
    from runtime.codecs.kserve import (
        RequestedOutput,
        decode_infer_request,
        encode_infer_response,
    )

    app = job.route.name
    payload = job.payload
    try:
        version = None
        if is_picture(job.content_type):
            codec.check_size(payload, max_bytes=limits.max_bytes)
            media = media_type(job.content_type)

            def decode(meta: PackageMeta) -> InferRequest:
                return picture_request(app, meta, media, payload)
        else:
            codec.check_bytes(payload, max_bytes=limits.max_bytes)
            request = decode_infer_request(payload, None, max_depth=limits.max_depth)
            version = request.model_version  # HTTP has it in the URL; MQTT in the body

            def decode(meta: PackageMeta) -> InferRequest:
                return request

        req, answer = await service.infer_request(app, decode, version=version, protocol="mqtt")
        requested = (
            [RequestedOutput(o.name, classification=o.classification) for o in req.outputs]
            if req.outputs
            else None
        )
        body, _ = encode_infer_response(
            app,
            answer.version,
            answer.outputs,
            request_id=req.id,
            requested=requested,
            labels=answer.labels,
        )
        return codec.ok_body_raw(body), answer
    except HeadframeError as e:
        replier.rejected(job, e)
        return codec.error_from(e), None
