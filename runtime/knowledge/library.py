"""The packs a box serves: open the active versions, search them, count, switch atomically.

``KnowledgeLibrary(store_root, service)`` is built once by the composition root (the
daemon) and handed to the transports. ``refresh()`` (blocking: a worker thread) opens
the version each pack's pointer names; a new version is opened completely before the one
assignment that makes it current, so a query in flight keeps the ``OpenPack`` it started
with and never sees a half-switched pack. ``await search(pack, request)`` checks the
embedder (runtime.knowledge.identity.verdict: a pack whose embedder the box does not
serve is refused with the reason), embeds the query on the embedder's worker, and runs
the index lookups on a worker thread. ``status()`` and ``metric_families()`` are what the
daemon registers for /status, the status page and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import HeadframeError, MetadataError, ModelNotFound
from runtime.knowledge.embedder import EmbedService, ServiceEmbedder
from runtime.knowledge.identity import EmbedderIdentity, Verdict, verdict
from runtime.knowledge.pack import ANN_INDEX, CHUNKS_DB, VECTORS, Manifest, PackStore
from runtime.knowledge.search import Hit, SearchRequest, search_pack
from runtime.knowledge.textindex import TextIndex
from runtime.knowledge.vectorindex import VectorIndex
from runtime.service.stats import Histogram

log = logging.getLogger(__name__)

QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PackRefused(MetadataError):
    """The pack cannot be queried on this box (its embedder differs or is absent): HTTP 409,
    the box's state conflicts with the pack; the message says why."""

    code = "pack_refused"
    status = 409


def embedder_verdict(service: EmbedService, want: EmbedderIdentity) -> Verdict:
    """May what ``service`` serves as ``want.app`` query vectors made by ``want``?"""
    try:
        slot = service.slot(want.app)
    except ModelNotFound:
        return verdict(want, None)
    return verdict(want, EmbedderIdentity.of_slot(slot, want.dimensions))


@dataclass
class OpenPack:
    """One version of one pack, open for reading; immutable once built."""

    name: str
    path: Path
    manifest: Manifest
    text: TextIndex
    vectors: VectorIndex

    @classmethod
    def open(cls, name: str, path: Path, manifest: Manifest) -> OpenPack:
        ann = path / ANN_INDEX if manifest.engine.vector == "hnsw" else None
        vectors = VectorIndex(path / VECTORS, ann, manifest.engine.hnsw_ef_search)
        text = TextIndex(path / CHUNKS_DB)
        if vectors.count != manifest.chunks or text.count != manifest.chunks:
            raise MetadataError(
                f"{path}: {vectors.count} vectors and {text.count} chunks, the manifest "
                f"says {manifest.chunks}"
            )
        return cls(name, path, manifest, text, vectors)

    @property
    def version(self) -> str:
        return self.manifest.version

    def index_bytes(self) -> int:
        return self.vectors.bytes + self.text.size_bytes()


@dataclass
class _Stats:
    queries: dict[tuple[str, str], int] = field(default_factory=dict)  # (mode, status) -> n
    latency: Histogram = field(default_factory=lambda: Histogram(buckets=QUERY_BUCKETS,
                               counts=[0] * (len(QUERY_BUCKETS) + 1)))  # fmt: skip
    last_ms: float | None = None


class KnowledgeLibrary:
    """Every pack in ``<store>/_knowledge``, searched through ``service``'s embedders."""

    def __init__(self, store_root: Path, service: EmbedService) -> None:
        self.store = PackStore(store_root)
        self._service = service
        self._open: dict[str, OpenPack] = {}
        self._errors: dict[str, str] = {}
        self._stats: dict[str, _Stats] = {}
        self._lock = threading.Lock()  # refreshes, one at a time (the dict swap is atomic)

    # ---- opening and switching ----------------------------------------------------------
    def refresh(self) -> list[str]:
        """Open every pack's active version that is not open yet; drop packs gone from the
        store. Blocking (run it on a worker thread). Returns the packs that changed."""
        changed = []
        with self._lock:
            names = self.store.packs()
            for gone in set(self._open) - set(names):
                del self._open[gone]
                changed.append(gone)
            for name in names:
                try:
                    version = self.store.active_version(name)
                    current = self._open.get(name)
                    if version is None or (current is not None and current.version == version):
                        continue
                    path, manifest = self.store.manifest(name, version)
                    opened = OpenPack.open(name, path, manifest)
                except HeadframeError as e:
                    self._errors[name] = e.message
                    log.warning("knowledge pack %s: %s", name, e.message)
                    continue
                self._open[name] = opened  # the one switch: new queries see the new version
                self._errors.pop(name, None)
                changed.append(name)
                log.info("knowledge pack %s %s open (%d chunks, %s index)", name,
                         opened.version, opened.manifest.chunks, opened.vectors.kind)  # fmt: skip
        return changed

    def get(self, name: str) -> OpenPack:
        pack = self._open.get(name)
        if pack is None:
            if name in self._errors:
                raise PackRefused(f"knowledge pack {name!r} cannot be opened: {self._errors[name]}")
            raise ModelNotFound(f"no knowledge pack {name!r} on this box")
        return pack

    def names(self) -> list[str]:
        return sorted(self._open)

    # ---- searching ---------------------------------------------------------------------
    def check_embedder(self, pack: OpenPack) -> Verdict:
        return embedder_verdict(self._service, pack.manifest.embedder)

    async def search(self, name: str, request: SearchRequest) -> tuple[OpenPack, list[Hit]]:
        """The pack searched (the version this query used) and its hits."""
        started = time.perf_counter()
        status = "error"
        try:
            pack = self.get(name)
            queries = request.queries()
            vectors = []
            if request.mode != "text":
                found = self.check_embedder(pack)
                if not found.ok:
                    raise PackRefused(f"knowledge pack {name!r} is refused: {found.reason}")
                embedder = ServiceEmbedder(self._service, pack.manifest.embedder.app)
                vectors = [await embedder.embed_query(q) for q in queries]
                want = pack.manifest.embedder
                if embedder.answered is not None and embedder.answered[0] != want.version:
                    # The embedder was swapped between the check and the embedding.
                    raise PackRefused(
                        f"knowledge pack {name!r} is refused: the query was embedded by "
                        f"{want.app} {embedder.answered[0]}, the pack by {want.version}"
                    )
                width = vectors[0].shape[0]
                if width != pack.vectors.dimensions:
                    raise PackRefused(
                        f"knowledge pack {name!r} is refused: its vectors have "
                        f"{pack.vectors.dimensions} dimensions, the embedder gives {width}"
                    )
            hits = await asyncio.to_thread(
                search_pack, pack.text, pack.vectors, queries, vectors, request
            )
            status = "ok"
            return pack, hits
        finally:
            elapsed = time.perf_counter() - started
            st = self._stats.setdefault(name, _Stats()) if name in self._open else None
            if st is not None:
                key = (request.mode, status)
                st.queries[key] = st.queries.get(key, 0) + 1
                st.latency.observe(elapsed)
                st.last_ms = round(elapsed * 1000, 3)

    # ---- visibility --------------------------------------------------------------------
    def describe(self, pack: OpenPack) -> dict[str, Any]:
        m = pack.manifest
        found = self.check_embedder(pack)
        st = self._stats.get(pack.name)
        return {
            "version": m.version,
            "chunks": m.chunks,
            "documents": len(m.sources),
            "embedder": m.embedder.model_dump(),
            "embedder_ok": found.ok,
            "embedder_note": found.reason,
            "index": pack.vectors.kind,
            "index_bytes": pack.index_bytes(),
            "queries": sum(st.queries.values()) if st else 0,
            "last_query_ms": st.last_ms if st else None,
        }

    def status(self) -> dict[str, Any]:
        """The /status ``knowledge`` section: every pack open, and those that failed."""
        out: dict[str, Any] = {"store": str(self.store.root), "packs": {}}
        for name, pack in sorted(self._open.items()):
            out["packs"][name] = self.describe(pack)
        for name, why in sorted(self._errors.items()):
            out["packs"].setdefault(name, {"error": why})
        return out

    def metric_families(self) -> Iterable[Any]:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        queries = CounterMetricFamily(
            "headframe_knowledge_queries",
            "Knowledge pack searches.",
            labels=["pack", "mode", "status"],
        )
        latency = HistogramMetricFamily(
            "headframe_knowledge_query_seconds", "Knowledge search latency.", labels=["pack"]
        )
        chunks = GaugeMetricFamily(
            "headframe_knowledge_chunks", "Chunks per open pack.", labels=["pack", "version"]
        )
        for name, st in sorted(self._stats.items()):
            for (mode, status), n in sorted(st.queries.items()):
                queries.add_metric([name, mode, status], n)
            buckets = [(str(b), float(c)) for b, c in st.latency.cumulative()]
            buckets[-1] = ("+Inf", buckets[-1][1])
            latency.add_metric([name], buckets, st.latency.sum)
        for name, pack in sorted(self._open.items()):
            chunks.add_metric([name, pack.version], pack.manifest.chunks)
        return [queries, latency, chunks]
