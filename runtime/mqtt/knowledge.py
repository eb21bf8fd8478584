"""Knowledge search over MQTT: ``{prefix}/knowledge/{pack}/search``.

The body is the same as ``POST /v1/vector_stores/{pack}/search`` (runtime.knowledge.search:
query, max_num_results, filters, ranking_options.score_threshold, mode) and the reply's
``data`` is the same ``vector_store.search_results.page``, in the usual envelope with the
request's correlation data. Request/response like the model topics (Response Topic, or
``{prefix}/knowledge/{pack}/result`` by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.errors import HeadframeError
from runtime.knowledge.library import KnowledgeLibrary
from runtime.knowledge.search import parse_search, response, result_item
from runtime.mqtt import codec

if TYPE_CHECKING:
    from runtime.mqtt.jobs import Job
    from runtime.mqtt.ports import Limits, Replier


async def run_search(
    library: KnowledgeLibrary, job: Job, limits: Limits, replier: Replier
) -> bytes:
    """The reply body for one search (an error envelope on any HeadframeError)."""
    pack = job.route.name
    try:
        doc = codec.parse_json_object(
            job.payload, max_bytes=limits.max_bytes, max_depth=limits.max_depth
        )
        request = parse_search(doc)
        opened, hits = await library.search(pack, request)
        items = [result_item(pack, opened.version, h) for h in hits]
        return codec.ok_body(response(request.queries(), items))
    except HeadframeError as e:
        replier.rejected(job, e)
        return codec.error_from(e)
