"""``knowledge build``: documents -> chunks -> vectors -> a versioned pack in the store.

Streaming, so memory stays bounded by one batch and the caps of runtime.knowledge.documents:
each document's blocks are chunked as they are read, chunks go to SQLite and to the
embedder a batch at a time, and vectors are appended to a raw file that becomes
``vectors.npy`` at the end (copied a slice at a time). Only the HNSW graph of a large
pack needs every vector at once, read through a memory map.

A chunk the embedder refuses as too long (runtime.knowledge.embedder.TooLong) is halved
at sentence ends and both halves embedded; nothing is cut silently. With ``golden`` (a
file of questions and where their answers are: runtime.knowledge.golden) the built pack
is asked them, and a recall@k below the floor fails the build; the resolved questions go
into the pack for the fleet's trial on each box. The manifest, with
the sha256 of every file and the embedder's identity, is written last; the version goes
into the store with one rename and, unless told otherwise, the pointer switches to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from runtime.errors import InvalidInput
from runtime.knowledge.chunking import Chunk, ChunkOptions, chunk_blocks, pieces
from runtime.knowledge.documents import Limits, kind_of, read_document
from runtime.knowledge.embedder import ServiceEmbedder, TooLong
from runtime.knowledge.golden import Asked, read_questions, recall, resolve, write_golden
from runtime.knowledge.identity import EmbedderIdentity
from runtime.knowledge.pack import (
    ANN_INDEX,
    CHUNKS_DB,
    GOLDEN,
    MANIFEST,
    VECTORS,
    Engine,
    FileDigest,
    GoldenSpec,
    Manifest,
    PackStore,
    SourceDoc,
    check_name,
    sha256_file,
)
from runtime.knowledge.textindex import TextIndex, TextIndexWriter
from runtime.knowledge.vectorindex import HNSW_FROM, VectorIndex, build_hnsw

log = logging.getLogger(__name__)

BATCH = 32
MAX_DOCUMENTS = 100_000


@dataclass(frozen=True)
class BuildOptions:
    documents: tuple[Path, ...]
    embedder: str
    pack: str
    version: str
    store: Path
    chunking: ChunkOptions = field(default_factory=ChunkOptions)
    limits: Limits = field(default_factory=Limits)
    activate: bool = True
    replace: bool = False
    hnsw_from: int = HNSW_FROM
    golden: Path | None = None  # questions -> expected chunks (runtime.knowledge.golden)
    golden_k: int = 5
    recall_floor_bp: int = 8000


@dataclass
class BuildReport:
    pack: str
    version: str
    path: Path
    documents: int
    chunks: int
    seconds: float
    embed_seconds: float
    embedder: EmbedderIdentity
    index: str
    split_chunks: int = 0
    golden: GoldenSpec | None = None

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    @property
    def embeddings_per_s(self) -> float:
        return self.chunks / self.embed_seconds if self.embed_seconds else 0.0


def expand(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, name in the pack): files as given (by file name), directories walked
    (documents of known types only, named by their path inside the directory)."""
    out: list[tuple[Path, str]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    try:
                        kind_of(f)
                    except InvalidInput:
                        continue
                    out.append((f, f.relative_to(p).as_posix()))
        elif p.exists():
            kind_of(p)  # an unknown type is an error when named explicitly
            out.append((p, p.name))
        else:
            raise InvalidInput(f"{p}: no such file or directory")
        if len(out) > MAX_DOCUMENTS:
            raise InvalidInput(f"more than {MAX_DOCUMENTS} documents in one pack")
    if not out:
        raise InvalidInput("no documents to read (PDF, Markdown, HTML or text)")
    return out


class _Vectors:
    """Vectors appended to a raw float32 file, turned into ``vectors.npy`` at the end."""

    def __init__(self, path: Path) -> None:
        self.raw = path.with_suffix(".f32")
        self._f = self.raw.open("wb")
        self.count = 0
        self.width = 0

    def add(self, v: np.ndarray) -> None:
        self.width = int(v.shape[1])
        self._f.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
        self.count += int(v.shape[0])

    def finish(self, path: Path) -> None:
        self._f.close()
        out = np.lib.format.open_memmap(path, mode="w+", dtype="<f4",
                                        shape=(self.count, max(self.width, 1)))  # fmt: skip
        src = np.memmap(self.raw, dtype="<f4", mode="r", shape=out.shape) if self.count else None
        for start in range(0, self.count, 65536):
            assert src is not None
            out[start : start + 65536] = src[start : start + 65536]
        out.flush()
        del out, src
        self.raw.unlink()


async def _embed_batch(
    embedder: ServiceEmbedder, batch: list[Chunk]
) -> tuple[list[Chunk], np.ndarray, int]:
    """Embed ``batch``, halving any chunk the embedder finds too long; (chunks, vectors, splits)."""
    splits = 0
    while True:
        try:
            return batch, await embedder.embed([c.embedding_text() for c in batch]), splits
        except TooLong as e:
            bad = batch[e.index]
            half = max(50, len(bad.text) // 2)
            parts = [p for p in pieces(bad.text, half) if p.strip()]
            if len(parts) < 2 or len(bad.text) <= 50:
                raise InvalidInput(
                    f"{bad.source}: a chunk of {len(bad.text)} characters is still "
                    f"{e.tokens} tokens, over the embedder's {e.limit}"
                ) from e
            halves = [Chunk(p, bad.source, bad.page, bad.heading) for p in parts]
            batch = batch[: e.index] + halves + batch[e.index + 1 :]
            splits += 1


async def build_pack(
    opts: BuildOptions,
    embedder: ServiceEmbedder,
    progress: Callable[[str, int], None] | None = None,
) -> BuildReport:
    """Build and install the pack; the report says what was built and how fast."""
    check_name(opts.pack, opts.version)
    files = expand(opts.documents)
    asked = read_questions(opts.golden) if opts.golden is not None else None
    if not 1 <= opts.golden_k <= 50 or not 0 <= opts.recall_floor_bp <= 10_000:
        raise InvalidInput("--golden-k is 1 to 50 and --recall-floor 0 to 1")
    identity = await embedder.identity()
    started = time.perf_counter()
    embed_s = 0.0
    packs = PackStore(opts.store)
    if (packs.version_dir(opts.pack, opts.version)).exists() and not opts.replace:
        raise InvalidInput(
            f"pack {opts.pack} {opts.version} is already in {packs.root} (another --version, "
            "or --replace)"
        )
    splits = 0
    with packs.staging() as staged:
        text = TextIndexWriter(staged / CHUNKS_DB)
        vectors = _Vectors(staged / VECTORS)
        sources: list[SourceDoc] = []
        for path, name in files:
            before = text.count
            batch: list[Chunk] = []
            for chunk in chunk_blocks(read_document(path, opts.limits, name), opts.chunking):
                batch.append(chunk)
                if len(batch) >= BATCH:
                    t0 = time.perf_counter()
                    done, vecs, n = await _embed_batch(embedder, batch)
                    embed_s += time.perf_counter() - t0
                    _store(text, vectors, done, vecs)
                    splits += n
                    batch = []
            if batch:
                t0 = time.perf_counter()
                done, vecs, n = await _embed_batch(embedder, batch)
                embed_s += time.perf_counter() - t0
                _store(text, vectors, done, vecs)
                splits += n
            digest, size = sha256_file(path)
            sources.append(SourceDoc(file=name, sha256=digest, bytes=size,
                                     chunks=text.count - before))  # fmt: skip
            if progress:
                progress(name, text.count)
            if text.count == before:
                log.warning("%s: no text found; it adds nothing to the pack", path)
        if text.count == 0:
            raise InvalidInput("the documents hold no text to index")
        text.finish()
        vectors.finish(staged / VECTORS)
        engine = Engine(vector="exact")
        if text.count >= opts.hnsw_from:
            mapped = np.load(staged / VECTORS, mmap_mode="r")
            params = build_hnsw(mapped, staged / ANN_INDEX)
            engine = Engine(vector="hnsw", hnsw_m=params["hnsw_m"],
                            hnsw_ef_search=params["hnsw_ef_search"])  # fmt: skip
            del mapped
        names = [CHUNKS_DB, VECTORS] + ([ANN_INDEX] if engine.vector == "hnsw" else [])
        golden = None
        if asked is not None:
            golden = await _golden(staged, engine, asked, opts, embedder)
            names.append(GOLDEN)
        digests = {}
        for name in names:
            d, s = sha256_file(staged / name)
            digests[name] = FileDigest(sha256=d, size=s)
        manifest = Manifest(
            pack=opts.pack,
            version=opts.version,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            embedder=identity,
            chunking={
                "target_chars": opts.chunking.target_chars,
                "overlap_chars": opts.chunking.overlap_chars,
            },
            engine=engine,
            chunks=text.count,
            sources=tuple(sources),
            files=digests,
            golden=golden,
        )
        (staged / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        target = packs.install(staged, replace=opts.replace)
    if opts.activate:
        packs.set_active(opts.pack, opts.version)
    return BuildReport(
        pack=opts.pack, version=opts.version, path=target, documents=len(files),
        chunks=manifest.chunks, seconds=time.perf_counter() - started, embed_seconds=embed_s,
        embedder=identity, index=engine.vector, split_chunks=splits, golden=golden,
    )  # fmt: skip


async def _golden(
    staged: Path, engine: Engine, asked: list[Asked], opts: BuildOptions, embedder: ServiceEmbedder
) -> GoldenSpec:
    """Resolve the golden questions against the built pack, ask them, keep them in it;
    InvalidInput when its recall is below the floor (nothing is installed)."""
    text = TextIndex(staged / CHUNKS_DB)
    ann = staged / ANN_INDEX if engine.vector == "hnsw" else None
    vectors = VectorIndex(staged / VECTORS, ann, engine.hnsw_ef_search)
    questions = resolve(asked, text, f"--golden {opts.golden}")
    got = await recall(text, vectors, questions, opts.golden_k, "hybrid", embedder.embed_query)
    if got.recall_bp < opts.recall_floor_bp:
        raise InvalidInput(
            f"--golden {opts.golden}: {got.describe()}, below the floor "
            f"{opts.recall_floor_bp} bp: the pack is not installed"
        )
    write_golden(staged / GOLDEN, questions)
    return GoldenSpec(questions=len(questions), k=opts.golden_k,
                      recall_floor_bp=opts.recall_floor_bp, recall_bp=got.recall_bp)  # fmt: skip


def _store(text: TextIndexWriter, vectors: _Vectors, chunks: list[Chunk], vecs: np.ndarray) -> None:
    text.add([(c.source, c.page, c.heading, c.text) for c in chunks])
    vectors.add(vecs)
