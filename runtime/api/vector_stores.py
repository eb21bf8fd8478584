"""Knowledge packs over HTTP in OpenAI's vector store shape (what clients already speak).

- ``GET /v1/vector_stores``: the packs this box serves, as ``vector_store`` objects;
- ``GET /v1/vector_stores/{pack}``: one;
- ``POST /v1/vector_stores/{pack}/search``: runtime.knowledge.search's request and its
  ``vector_store.search_results.page`` (the openai SDK's ``client.vector_stores.search``).

A thin adapter over runtime.knowledge.library (search on the embedder's worker and a
worker thread, never on the loop). Errors have OpenAI's shape: 400 bad body, 404 unknown
pack, 409 a pack refused (its embedder is not what the box serves, with the reason),
429/503 from the embedder's worker.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from runtime.api.errors import error_headers
from runtime.codecs.openai import error_for
from runtime.errors import HeadframeError, InvalidInput
from runtime.knowledge.library import KnowledgeLibrary, OpenPack
from runtime.knowledge.search import parse_search, response, result_item

MAX_BODY = 64 * 1024  # a question and a filter; the guard's body limit is far larger


def _error(exc: HeadframeError) -> Response:
    """The error's own status and Retry-After (runtime.errors), in OpenAI's body."""
    return Response(orjson.dumps(error_for(exc)), status_code=exc.status,
                    media_type="application/json", headers=error_headers(exc))  # fmt: skip


def _json(doc: Any) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json")


def vector_store(library: KnowledgeLibrary, pack: OpenPack) -> dict[str, Any]:
    m = pack.manifest
    info = library.describe(pack)
    return {
        "id": pack.name, "object": "vector_store", "name": pack.name,
        "created_at": int(pack.path.stat().st_mtime), "status": "completed",
        "usage_bytes": info["index_bytes"],
        "file_counts": {"in_progress": 0, "completed": len(m.sources), "failed": 0,
                        "cancelled": 0, "total": len(m.sources)},
        "metadata": {"version": m.version, "chunks": str(m.chunks),
                     "embedder": m.embedder.describe(), "index": info["index"]},
        "expires_after": None, "expires_at": None, "last_active_at": None,
    }  # fmt: skip


def router(library: KnowledgeLibrary) -> APIRouter:
    r = APIRouter(tags=["knowledge"])

    @r.get("/v1/vector_stores")
    async def list_stores() -> Response:
        data = [vector_store(library, library.get(n)) for n in library.names()]
        return _json({"object": "list", "data": data, "first_id": None, "last_id": None,
                      "has_more": False})  # fmt: skip

    @r.get("/v1/vector_stores/{pack}")
    async def get_store(pack: str) -> Response:
        try:
            return _json(vector_store(library, library.get(pack)))
        except HeadframeError as e:
            return _error(e)

    @r.post("/v1/vector_stores/{pack}/search")
    async def search(pack: str, request: Request) -> Response:
        try:
            body = await request.body()
            if len(body) > MAX_BODY:
                raise InvalidInput(f"body: over {MAX_BODY} bytes")
            req = parse_search(body)
            opened, hits = await library.search(pack, req)
        except HeadframeError as e:
            return _error(e)
        items = [result_item(pack, opened.version, h) for h in hits]
        return _json(response(req.queries(), items))

    return r
