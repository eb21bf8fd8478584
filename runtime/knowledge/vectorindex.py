"""Nearest chunks by vector: exact for small packs, an HNSW graph (faiss) for large ones.

The engine was chosen by measurement (bench/knowledge_bench.py, bench/README.md
"Knowledge"): exact search over unit vectors is a matrix-vector product, perfect recall
and under a millisecond up to ``HNSW_FROM`` chunks; above that an HNSW graph (faiss's
``IndexHNSWFlat``, inner product) keeps a query under a millisecond at 1M chunks with
recall@10 above 0.95 of exact. ``vectors.npy`` is always kept (memory-mapped: read only
where a filtered search needs it), so a filtered query searches exactly the rows its
filter allows when they are few, and the graph with over-fetching when they are many.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import BackendUnavailable

log = logging.getLogger(__name__)

HNSW_FROM = 20_000  # chunks; below this exact search is as fast and exact
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 64
EXACT_FILTER_MAX = 50_000  # a filter allowing fewer rows than this is searched exactly


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise BackendUnavailable(
            f"faiss-cpu is not installed (pip install 'headframe[knowledge]'): {e}"
        ) from e
    return faiss


def build_hnsw(vectors: np.ndarray, path: Path, threads: int | None = None) -> dict[str, int]:
    """Write the HNSW graph of ``vectors`` to ``path``; the engine's parameters."""
    faiss = _faiss()
    if threads:
        faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(path))
    return {"hnsw_m": HNSW_M, "hnsw_ef_search": HNSW_EF_SEARCH}


def dot(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``vectors @ q`` on this thread. einsum's own loop, not BLAS: a matrix-vector product
    handed to OpenBLAS's thread pool waits for its threads, and on a busy two-core box that
    wait is most of the query (bench/README.md "Knowledge": 8 ms for 2,000 rows in BLAS,
    0.1 ms here)."""
    return np.einsum("ij,j->i", vectors, q)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first."""
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


class VectorIndex:
    """Search ``vectors.npy`` exactly, or through the HNSW graph at ``ann_path``."""

    def __init__(self, vectors_path: Path, ann_path: Path | None, ef_search: int | None) -> None:
        self.vectors = np.load(vectors_path, mmap_mode="r")
        self.count, self.dimensions = int(self.vectors.shape[0]), int(self.vectors.shape[1])
        self._ann: Any = None
        self.bytes = vectors_path.stat().st_size
        if ann_path is not None:
            faiss = _faiss()
            self._ann = faiss.read_index(str(ann_path))
            self._ann.hnsw.efSearch = ef_search or HNSW_EF_SEARCH
            self.bytes += ann_path.stat().st_size
        else:
            # Small: read it into memory once, so a query never waits on the page cache.
            self.vectors = np.ascontiguousarray(self.vectors)

    @property
    def kind(self) -> str:
        return "hnsw" if self._ann is not None else "exact"

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Up to ``k`` (row, cosine similarity), best first; only ``allowed`` rows if given."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dimensions:
            raise ValueError(f"query has {q.shape[0]} dimensions, the pack {self.dimensions}")
        if allowed is not None and (self._ann is None or len(allowed) <= EXACT_FILTER_MAX):
            if len(allowed) == 0:
                return []
            rows = np.asarray(allowed, dtype=np.int64)
            scores = dot(np.asarray(self.vectors[rows]), q)
            best = top_k(scores, k)
            return [(int(rows[i]), float(scores[i])) for i in best]
        if self._ann is None:
            scores = dot(np.asarray(self.vectors), q)
            return [(int(i), float(scores[i])) for i in top_k(scores, k)]
        want = k if allowed is None else min(self.count, k * 8)
        dist, ids = self._ann.search(q[None, :], want)
        found = [(int(i), float(d)) for i, d in zip(ids[0], dist[0], strict=True) if i >= 0]
        if allowed is not None:
            keep = set(np.asarray(allowed).tolist())
            found = [f for f in found if f[0] in keep]
        return found[:k]
