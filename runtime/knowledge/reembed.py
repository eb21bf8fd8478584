"""Embedding a delivered pack's chunks again with the box's own embedder.

A pack carries its chunks' text (``chunks.sqlite``), so a box whose embedding
application differs from the pack's (another version, another model) can make the
vectors itself instead of refusing the pack, when the operator allows it (``[fleet]
reembed_packs``: runtime.knowledge.intake decides). The chunks, their ids and the golden
questions stay as built; ``vectors.npy`` (and a large pack's HNSW graph) are made again
from the same text the builder embedded (heading and text), and the manifest names the
box's embedder, keeps the builder's as ``reembedded_from`` and lists the new files'
sha256s.

A chunk the box's embedder finds too long is embedded in halves (cut at sentence ends)
and its vector is the normalised mean of theirs: its id and text stay as built (golden
questions name ids), and nothing is cut away.

It works in the staged directory, in place: each new file is written beside the old and
renamed over it, never written through (the fleet's staged files are hard links into its
content-addressed blob store).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import InvalidInput
from runtime.files import atomic_write_bytes
from runtime.knowledge.chunking import Chunk, pieces
from runtime.knowledge.embedder import ServiceEmbedder, TooLong
from runtime.knowledge.pack import (
    ANN_INDEX,
    CHUNKS_DB,
    MANIFEST,
    VECTORS,
    FileDigest,
    Manifest,
    sha256_file,
)
from runtime.knowledge.textindex import TextIndex
from runtime.knowledge.vectorindex import build_hnsw

BATCH = 32


@dataclass(frozen=True)
class Reembedded:
    manifest: Manifest
    halved: int  # chunks embedded in halves (too long for the box's embedder whole)


async def reembed(vdir: Path, manifest: Manifest, embedder: ServiceEmbedder) -> Reembedded:
    """New vectors for the pack in ``vdir`` from ``embedder``; the manifest rewritten."""
    identity = await embedder.identity()
    text = TextIndex(vdir / CHUNKS_DB)
    count = text.count
    fresh = vdir / f".{VECTORS}.new"
    out = np.lib.format.open_memmap(fresh, mode="w+", dtype="<f4",
                                    shape=(count, identity.dimensions))  # fmt: skip
    halved = [0]
    for start in range(0, count, BATCH):
        ids = list(range(start, min(count, start + BATCH)))
        rows = text.rows(ids)
        texts = [Chunk(rows[i].text, rows[i].source, rows[i].page,
                       rows[i].heading).embedding_text() for i in ids]  # fmt: skip
        out[start : start + len(ids)] = await _vectors(embedder, texts, halved)
    out.flush()
    del out
    os.replace(fresh, vdir / VECTORS)
    if manifest.engine.vector == "hnsw":
        graph = vdir / f".{ANN_INDEX}.new"
        build_hnsw(np.load(vdir / VECTORS, mmap_mode="r"), graph)
        os.replace(graph, vdir / ANN_INDEX)
    files = {}
    for name in manifest.files:
        digest, size = sha256_file(vdir / name)
        files[name] = FileDigest(sha256=digest, size=size)
    new = manifest.model_copy(
        update={"embedder": identity, "reembedded_from": manifest.embedder, "files": files}
    )
    atomic_write_bytes(vdir / MANIFEST, (new.model_dump_json(indent=2) + "\n").encode())
    return Reembedded(new, halved[0])


async def _vectors(embedder: ServiceEmbedder, texts: list[str], halved: list[int]) -> np.ndarray:
    """[len(texts), dim]; a text too long whole is the mean of its halves' vectors."""
    try:
        return await embedder.embed(texts)
    except TooLong as e:
        i = e.index
        parts = [p for p in pieces(texts[i], max(50, len(texts[i]) // 2)) if p.strip()]
        if len(parts) < 2:
            raise InvalidInput(
                f"a chunk of {len(texts[i])} characters is {e.tokens} tokens, over the "
                f"embedder's {e.limit}, and cannot be cut smaller"
            ) from e
        halved[0] += 1
        mean = (await _vectors(embedder, parts, halved)).mean(axis=0)
        one = (mean / max(float(np.linalg.norm(mean)), 1e-12))[None, :].astype(np.float32)
        before = await _vectors(embedder, texts[:i], halved) if i else None
        after = await _vectors(embedder, texts[i + 1 :], halved) if i + 1 < len(texts) else None
        return np.concatenate([a for a in (before, one, after) if a is not None], axis=0)
