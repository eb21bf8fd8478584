"""Embeddings over MQTT: an OpenAI embeddings body on ``{prefix}/models/{app}/embed``, the
OpenAI ``list`` object in the reply envelope. The same codec as ``POST /v1/embeddings``
(runtime.codecs.embeddings); the topic names the application, so ``model`` may be left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.codecs.embeddings import EmbedService, embed, parse_embedding
from runtime.errors import HeadframeError
from runtime.mqtt import codec


async def run_embed(
    service: EmbedService,
    app: str,
    payload: bytes,
    *,
    max_bytes: int,
    max_depth: int,
    count_error: Callable[[str], Any],
) -> bytes:
    """The reply body for one embed request (an error envelope on any HeadframeError)."""
    try:
        doc = codec.parse_json_object(payload, max_bytes=max_bytes, max_depth=max_depth)
        doc["model"] = app  # the topic decides the application
        request = parse_embedding(doc)
        return codec.ok_body(await embed(service, request, "mqtt"))
    except HeadframeError as e:
        count_error(e.code)
        return codec.error_from(e)
