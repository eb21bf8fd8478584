"""Search one pack: OpenAI's vector store search shape, hybrid ranking by default.

Request (``POST /v1/vector_stores/{pack}/search``, MQTT ``{prefix}/knowledge/{pack}/search``,
the openai SDK's ``client.vector_stores.search``): ``query`` (a string or a few),
``max_num_results`` (1-50, default 10), ``filters`` (OpenAI's comparison and compound
filters over the chunk attributes ``file``, ``page`` and ``heading``),
``ranking_options.score_threshold``, and headframe's ``mode``: "hybrid" (default),
"vector" or "text" (the openai SDK sends it with ``extra_body``).

Ranking: "vector" is the cosine similarity of the query's embedding; "text" is BM25 over
SQLite FTS5 (so a part number or an error code the encoder never saw is still found
where it is written); "hybrid" fuses both lists by reciprocal rank fusion (RRF, k=60),
each chunk scored sum(1 / (60 + rank)) over the lists it is in, reported divided by the
best possible (first in every list), so 1.0 means "first by both"; text hits under a
fifth of the best BM25 (common words only) stay out of the fusion. Text scores are
s / (1 + s) of BM25's s. ``score_threshold`` applies to the score reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runtime.codecs.openai import validation_message
from runtime.errors import InvalidInput
from runtime.knowledge.textindex import ChunkRow, TextIndex
from runtime.knowledge.vectorindex import VectorIndex

Mode = Literal["hybrid", "vector", "text"]
RRF_K = 60
TEXT_EVIDENCE = 0.2  # a text hit counts in hybrid fusion from this share of the best BM25
MAX_RESULTS = 50
MAX_QUERIES = 4
MAX_FILTERS = 32
FILTER_KEYS = {"file": "source", "filename": "source", "page": "page", "heading": "heading"}
_OPS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class RankingOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ranker: str | None = None
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str | list[str]
    max_num_results: int = Field(default=10, ge=1, le=MAX_RESULTS)
    filters: dict[str, Any] | None = None
    ranking_options: RankingOptions | None = None
    rewrite_query: bool = False
    mode: Mode = "hybrid"

    @field_validator("query")
    @classmethod
    def _query(cls, v: str | list[str]) -> str | list[str]:
        items = [v] if isinstance(v, str) else v
        if not items or len(items) > MAX_QUERIES:
            raise ValueError(f"send from 1 to {MAX_QUERIES} queries")
        if any(not q.strip() for q in items):
            raise ValueError("an empty query")
        return v

    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)

    @property
    def threshold(self) -> float:
        return self.ranking_options.score_threshold if self.ranking_options else 0.0


def parse_search(body: bytes | str | Mapping[str, Any]) -> SearchRequest:
    """Validate a search body (JSON text or a decoded object); InvalidInput names the field."""
    try:
        if isinstance(body, bytes | str):
            return SearchRequest.model_validate_json(body)
        return SearchRequest.model_validate(body)
    except ValidationError as e:
        raise InvalidInput(validation_message(e)) from e


def compile_filter(spec: Mapping[str, Any], depth: int = 0, count: list[int] | None = None
                   ) -> tuple[str, list[Any]]:  # fmt: skip
    """OpenAI's filter object -> (SQL over the chunks table, parameters)."""
    count = count if count is not None else [0]
    count[0] += 1
    if depth > 4 or count[0] > MAX_FILTERS:
        raise InvalidInput(f"filters: at most {MAX_FILTERS} filters, nested 4 deep")
    kind = spec.get("type")
    if kind in ("and", "or"):
        parts = spec.get("filters")
        if not isinstance(parts, list) or not parts:
            raise InvalidInput(f"filters: a compound {kind!r} filter needs a list of filters")
        compiled = [compile_filter(p if isinstance(p, Mapping) else {}, depth + 1, count)
                    for p in parts]  # fmt: skip
        sql = f" {kind.upper()} ".join(f"({s})" for s, _ in compiled)
        return sql, [p for _, ps in compiled for p in ps]
    key, value = spec.get("key"), spec.get("value")
    column = FILTER_KEYS.get(str(key))
    if column is None:
        raise InvalidInput(
            f"filters: key {key!r}: chunks have the attributes file, page and heading"
        )
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not value or len(value) > 256:
            raise InvalidInput(f"filters: {kind!r} takes a list of 1 to 256 values")
        marks = ",".join("?" * len(value))
        return f"{column} {'NOT ' if kind == 'nin' else ''}IN ({marks})", list(value)
    if kind not in _OPS:
        raise InvalidInput(
            f"filters: type {kind!r}: one of {sorted([*_OPS, 'in', 'nin', 'and', 'or'])}"
        )
    if not isinstance(value, str | int | float | bool):
        raise InvalidInput(f"filters: {key!r} {kind}: the value is a string, number or boolean")
    return f"{column} {_OPS[kind]} ?", [value]


@dataclass(frozen=True)
class Hit:
    row: ChunkRow
    score: float
    vector_rank: int | None = None
    text_rank: int | None = None


def rrf(
    lists: Sequence[Sequence[int]], k: int = RRF_K
) -> list[tuple[int, float, list[int | None]]]:
    """(id, fused score in [0, 1], rank in each list or None), best first."""
    scores: dict[int, float] = {}
    ranks: dict[int, list[int | None]] = {}
    for li, ids in enumerate(lists):
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(cid, [None] * len(lists))[li] = rank
    best = len(lists) / (k + 1)
    order = sorted(scores, key=lambda c: (-scores[c], c))
    return [(c, scores[c] / best, ranks[c]) for c in order]


def search_pack(
    text: TextIndex,
    vectors: VectorIndex,
    queries: Sequence[str],
    query_vectors: Sequence[np.ndarray],
    request: SearchRequest,
) -> list[Hit]:
    """The ranked hits (blocking: run it on a worker thread)."""
    k = request.max_num_results
    deep = max(k * 4, 40)  # each list is deeper than the answer, so fusion has room
    where = compile_filter(request.filters) if request.filters else None
    allowed = (
        np.asarray(text.ids_where(*where), np.int64) if where and request.mode != "text" else None
    )
    vector_lists: list[list[tuple[int, float]]] = []
    text_lists: list[list[tuple[int, float]]] = []
    if request.mode in ("hybrid", "vector"):
        vector_lists = [vectors.search(v, deep, allowed) for v in query_vectors]
    if request.mode in ("hybrid", "text"):
        text_lists = [text.search(q, deep, where) for q in queries]
    if request.mode == "hybrid":
        # A chunk that matched only the query's common words (BM25 near zero beside the
        # best) is no text evidence: left in, it would outvote the chunk holding the rare
        # term (a part number) in the fusion.
        text_lists = [[h for h in lst if h[1] >= TEXT_EVIDENCE * lst[0][1]] for lst in text_lists]
    if request.mode == "vector":
        best: dict[int, float] = {}
        for lst in vector_lists:
            for cid, s in lst:
                best[cid] = max(best.get(cid, -1.0), s)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        scored: list[tuple[int, float, tuple[int | None, int | None]]] = [
            (cid, max(0.0, min(1.0, s)), (None, None)) for cid, s in ranked
        ]
    elif request.mode == "text":
        best = {}
        for lst in text_lists:
            for cid, s in lst:
                best[cid] = max(best.get(cid, 0.0), s)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        scored = [(cid, s / (1.0 + s), (None, None)) for cid, s in ranked]
    else:
        lists = [[c for c, _ in lst] for lst in vector_lists + text_lists]
        first_text = len(vector_lists)  # each chunk's rank by the first query, per kind
        scored = [(c, s, (r[0], r[first_text])) for c, s, r in rrf(lists)]
    scored = [s for s in scored if s[1] >= request.threshold][:k]
    rows = text.rows([c for c, _, _ in scored])
    return [Hit(rows[c], s, r[0], r[1]) for c, s, r in scored if c in rows]


def result_item(pack: str, version: str, hit: Hit) -> dict[str, Any]:
    """One result in OpenAI's VectorStoreSearchResponse shape (attributes: no nulls)."""
    row = hit.row
    attributes: dict[str, Any] = {"file": row.source, "chunk": row.id, "pack_version": version}
    if row.page is not None:
        attributes["page"] = row.page
    if row.heading:
        attributes["heading"] = row.heading
    return {
        "file_id": f"{pack}/{row.source}",
        "filename": row.source,
        "score": round(hit.score, 6),
        "attributes": attributes,
        "content": [{"type": "text", "text": row.text}],
    }


def response(queries: list[str], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": items,
        "has_more": False,
        "next_page": None,
    }
