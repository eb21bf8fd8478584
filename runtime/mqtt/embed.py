"""Embeddings over MQTT: an OpenAI embeddings body on ``{prefix}/models/{app}/embed``, the
OpenAI ``list`` object in the reply envelope. The same codec as ``POST /v1/embeddings``
(runtime.codecs.embeddings); the topic names the application, so ``model`` may be left out.
Same signature as runtime.mqtt.infer.run_infer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.codecs.embeddings import EmbedService, embed, parse_embedding
from runtime.errors import HeadframeError
from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.mqtt.jobs import Job
    from runtime.mqtt.ports import Limits, Replier


async def run_embed(
    service: EmbedService, job: Job, limits: Limits, replier: Replier
) -> tuple[bytes, Any]:
    """The reply body for one embed request and the answer behind it (an error envelope and
    None on any HeadframeError, which ``replier.rejected`` counts and logs)."""
    app = job.route.name
    try:
        doc = codec.parse_json_object(
            job.payload, max_bytes=limits.max_bytes, max_depth=limits.max_depth
        )
        doc["model"] = app  # the topic decides the application
        request = parse_embedding(doc)
        out, answer = await embed(service, request, "mqtt")
        return codec.ok_body(out), answer
    except HeadframeError as e:
        replier.rejected(job, e)
        return codec.error_from(e), None
