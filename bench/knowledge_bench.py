"""Knowledge: which vector engine, how fast a pack builds, what grounding adds to a chat.

Three parts, each a ratio against a baseline measured in the same run:

1. ``engines`` (default): recall@10 against exact search, query p50/p95 (one query at a
   time, as a chat asks), build time and memory, at each ``--sizes`` (384 dimensions),
   for every candidate installed here: exact numpy (the baseline), faiss HNSW, usearch
   HNSW, faiss int8 flat (scalar quantizer), sqlite-vec, LanceDB; SQLite FTS5 BM25 query
   p50 over synthetic text of the same size. A candidate that cannot run here says why.
   Vectors are synthetic with the structure of real sentence embeddings: clusters in a
   low-dimensional latent space (48 dimensions, a power-law spectrum) projected into 384
   and normalised, queries near stored points; uniform random vectors would make every
   ANN index look worse than it does on real text.
2. ``--build``: a pack of the standard library's docstrings built with the real MiniLM
   encoder (tests/support): the builder's chunks/s against the encoder's own
   embeddings/s on the same texts, in batches of 32.
3. ``--chat``: time to first token of a grounded chat against a plain one (the tiny test
   GGUF, the same question): retrieval alone, and retrieval plus the longer prompt.

    .venv/bin/python bench/knowledge_bench.py --sizes 10000,100000 --queries 200
    .venv/bin/python bench/knowledge_bench.py --sizes 1000000 --engines exact,faiss-hnsw
    .venv/bin/python bench/knowledge_bench.py --sizes 2000 --build --chat   # smoke

Results go to stdout as a table and, with ``--json FILE``, as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIM = 384
LATENT = 48
ENGINES = ["exact", "faiss-hnsw", "usearch-hnsw", "faiss-sq8", "sqlite-vec", "lancedb"]


def rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def synthetic(n: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proj = np.linalg.qr(rng.normal(size=(DIM, LATENT)))[0].astype(np.float32)
    spectrum = (np.arange(1, LATENT + 1) ** -0.5).astype(np.float32)
    centres = rng.normal(size=(max(n // 50, 10), LATENT)).astype(np.float32) * spectrum
    x = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):  # bounded temporaries at 1M
        m = min(100_000, n - start)
        z = centres[rng.integers(0, len(centres), m)]
        z += 0.5 * rng.normal(size=(m, LATENT)).astype(np.float32) * spectrum
        x[start : start + m] = z @ proj.T + 0.01 * rng.normal(size=(m, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    picks = x[rng.integers(0, n, queries)]
    q = picks + 0.05 * rng.normal(size=picks.shape).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q.astype(np.float32)


def truth(x: np.ndarray, q: np.ndarray, k: int = 10) -> list[set[int]]:
    out = []
    for start in range(0, len(q), 50):
        s = q[start : start + 50] @ x.T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        out += [set(map(int, row)) for row in top]
    return out


def timed(
    fn: Callable[[np.ndarray], list[int]], q: np.ndarray
) -> tuple[list[list[int]], list[float]]:
    found, times = [], []
    for v in q:
        t = time.perf_counter()
        found.append(fn(v))
        times.append(time.perf_counter() - t)
    return found, times


# --- engines: build(x, tmpdir) -> search(v) -> ids --------------------------------------


def exact(x: np.ndarray, tmp: Path) -> Callable[[np.ndarray], list[int]]:
    from runtime.knowledge.vectorindex import dot, top_k

    return lambda v: top_k(dot(x, v), 10).tolist()


def faiss_hnsw(x: np.ndarray, tmp: Path) -> Callable[[np.ndarray], list[int]]:
    import faiss

    from runtime.knowledge.vectorindex import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M

    faiss.omp_set_num_threads(2)
    index = faiss.IndexHNSWFlat(DIM, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(x)
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return lambda v: index.search(v[None, :], 10)[1][0].tolist()


def usearch_hnsw(x: np.ndarray, tmp: Path) -> Callable[[np.ndarray], list[int]]:
    from usearch.index import Index

    from runtime.knowledge.vectorindex import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M

    index = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=HNSW_M,
                  expansion_add=HNSW_EF_CONSTRUCTION, expansion_search=HNSW_EF_SEARCH)  # fmt: skip
    index.add(np.arange(len(x)), x, threads=2)
    return lambda v: index.search(v, 10).keys.tolist()


def faiss_sq8(x: np.ndarray, tmp: Path) -> Callable[[np.ndarray], list[int]]:
    import faiss

    index = faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit,
                                       faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    index.train(x[: min(len(x), 100_000)])
    index.add(x)
    return lambda v: index.search(v[None, :], 10)[1][0].tolist()


def sqlite_vec(x: np.ndarray, tmp: Path) -> Callable[[np.ndarray], list[int]]:
    import sqlite3

    import sqlite_vec as sv

    db = sqlite3.connect(str(tmp / "vec.sqlite"))
    if not hasattr(db, "enable_load_extension"):
        raise RuntimeError("this Python's sqlite3 was built without loadable extensions")
    db.enable_load_extension(True)
    sv.load(db)
    db.execute(f"CREATE VIRTUAL TABLE v USING vec0(e float[{DIM}] distance_metric=cosine)")
    db.executemany("INSERT INTO v(rowid, e) VALUES (?, ?)",
                   ((i, row.tobytes()) for i, row in enumerate(x)))  # fmt: skip
    db.commit()
    sql = "SELECT rowid FROM v WHERE e MATCH ? AND k = 10 ORDER BY distance"
    return lambda v: [r[0] for r in db.execute(sql, (v.tobytes(),))]


def lancedb_engine(x: np.ndarray, tmp: Path) -> Callable[[np.ndarray], list[int]]:
    import lancedb

    db = lancedb.connect(str(tmp / "lance"))
    table = db.create_table("v", data=[{"id": i, "vector": row} for i, row in enumerate(x)])
    if len(x) >= 100_000:
        table.create_index(metric="cosine")
    return lambda v: [r["id"] for r in table.search(v).limit(10).to_list()]


BUILDERS: dict[str, Callable[[np.ndarray, Path], Callable[[np.ndarray], list[int]]]] = {
    "exact": exact, "faiss-hnsw": faiss_hnsw, "usearch-hnsw": usearch_hnsw,
    "faiss-sq8": faiss_sq8, "sqlite-vec": sqlite_vec, "lancedb": lancedb_engine,
}  # fmt: skip


def fts5_row(n: int, queries: int) -> dict[str, Any]:
    """BM25 query p50 over ``n`` synthetic chunks (Zipf words and part numbers)."""
    from runtime.knowledge.textindex import TextIndex, TextIndexWriter

    rng = np.random.default_rng(1)
    vocab = [f"w{i}" for i in range(20_000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.sqlite"
        w = TextIndexWriter(path)
        t0 = time.perf_counter()
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            words = rng.choice(len(vocab), size=(m, 80), p=weights)
            w.add([("doc.md", None, None, " ".join(vocab[j] for j in row) + f" PN-{start + i}")
                   for i, row in enumerate(words)])  # fmt: skip
        w.finish()
        build_s = time.perf_counter() - t0
        index = TextIndex(path)
        qs = [f"w{rng.integers(0, 2000)} w{rng.integers(0, 20000)} PN-{rng.integers(0, n)}"
              for _ in range(queries)]  # fmt: skip
        times = []
        for text in qs:
            t = time.perf_counter()
            index.search(text, 40)
            times.append(time.perf_counter() - t)
        return {"engine": "sqlite-fts5 (BM25)", "n": n, "build_s": round(build_s, 2),
                "p50_ms": round(float(np.median(times)) * 1000, 3),
                "p95_ms": round(float(np.percentile(times, 95)) * 1000, 3),
                "bytes": path.stat().st_size}  # fmt: skip


def engines(sizes: list[int], names: list[str], queries: int, text: bool) -> list[dict[str, Any]]:
    rows = []
    for n in sizes:
        x, q = synthetic(n, queries)
        want = truth(x, q)
        for name in names:
            gc.collect()
            before = rss()
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    t0 = time.perf_counter()
                    search = BUILDERS[name](x, Path(tmp))
                    build_s = time.perf_counter() - t0
                    grown = rss() - before
                    found, times = timed(search, q)
                except Exception as e:  # an engine missing here: say why, go on
                    rows.append({"engine": name, "n": n, "skipped": f"{type(e).__name__}: {e}"})
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                recall = float(np.mean([len(want[i] & set(f)) / 10 for i, f in enumerate(found)]))
                rows.append({
                    "engine": name, "n": n, "recall_at_10": round(recall, 4),
                    "p50_ms": round(float(np.median(times)) * 1000, 3),
                    "p95_ms": round(float(np.percentile(times, 95)) * 1000, 3),
                    "build_s": round(build_s, 2), "memory_mib": round(grown / 2**20, 1),
                })  # fmt: skip
                del search
            print(json.dumps(rows[-1]), flush=True)
        if text and n <= 1_000_000:
            rows.append(fts5_row(n, queries))
            print(json.dumps(rows[-1]), flush=True)
        del x, q
    return rows


# --- pack build throughput and grounded chat ---------------------------------------------


def build_throughput(tmp: Path) -> dict[str, Any]:
    import asyncio

    from runtime.catalog import Store
    from runtime.knowledge.chunking import chunk_blocks
    from runtime.knowledge.documents import read_document
    from runtime.service import InferenceService
    from tests.support.knowledge import build, write_stdlib_corpus
    from tests.support.loaders import ort_loader
    from tests.support.minilm import APP, minilm_store

    store = minilm_store(tmp / "store")
    corpus = write_stdlib_corpus(tmp / "docs")
    report = build(store, [corpus], "bench", "1.0.0")
    texts = [c.embedding_text() for f in sorted(corpus.iterdir())
             for c in chunk_blocks(read_document(f))]  # fmt: skip

    async def encoder_alone() -> float:
        service = InferenceService(ort_loader)
        await service.add(Store(store).load(APP))
        try:
            t0 = time.perf_counter()
            for start in range(0, len(texts), 32):
                rows = np.array([t.encode() for t in texts[start : start + 32]], dtype=object)
                try:
                    await service.infer(APP, {"text": rows}, protocol="bench")
                except Exception:  # a chunk over the context: the builder halves it
                    continue
            return len(texts) / (time.perf_counter() - t0)
        finally:
            await service.close()

    alone = asyncio.run(encoder_alone())
    return {"chunks": report.chunks, "build_chunks_per_s": round(report.chunks_per_s, 1),
            "encoder_embeddings_per_s": round(alone, 1),
            "ratio": round(report.chunks_per_s / alone, 3), "seconds": round(report.seconds, 2),
            "split_chunks": report.split_chunks}  # fmt: skip


def grounded_ttft(tmp: Path, rounds: int) -> dict[str, Any]:
    import asyncio

    from runtime.catalog import Store
    from runtime.codecs.openai import parse_chat
    from runtime.knowledge.grounding import Grounding
    from runtime.knowledge.library import KnowledgeLibrary
    from runtime.service import InferenceService
    from tests.support.knowledge import build, write_manual_pdf
    from tests.support.loaders import ort_loader
    from tests.support.minilm import APP, minilm_store
    from tests.support.text_models import write_text_package

    store = minilm_store(tmp / "chat-store")
    build(store, [write_manual_pdf(tmp / "manual.pdf")], "manuals", "1.0.0")
    text = write_text_package(tmp / "text", variants=(("tiny-f32", "tiny", "f32"),))
    question = {"role": "user", "content": "What torque for the main bearing bolts?"}
    body = {"model": "assistant", "max_tokens": 1, "seed": 1, "messages": [question]}

    async def run() -> dict[str, Any]:
        service = InferenceService(ort_loader)
        await service.add(Store(store).load(APP))
        await service.add(text)
        library = KnowledgeLibrary(store, service)
        library.refresh()
        grounding = Grounding(library)
        plain, grounded, retrieval, tokens = [], [], [], [0, 0]
        try:
            for _ in range(rounds):
                t0 = time.perf_counter()
                async for c in service.generate("assistant", parse_chat(body).to_generation()):
                    tokens[0] = c.prompt_tokens
                    break
                plain.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                g = await grounding.ground(service, parse_chat({**body, "knowledge": ["manuals"]}),
                                           "bench")  # fmt: skip
                retrieval.append(time.perf_counter() - t0)
                async for c in service.generate("assistant", g.request.to_generation()):
                    tokens[1] = c.prompt_tokens
                    break
                grounded.append(time.perf_counter() - t0)
        finally:
            await service.close()
        p = float(np.median(plain)) * 1000
        return {"plain_ttft_ms": round(p, 2),
                "grounded_ttft_ms": round(float(np.median(grounded)) * 1000, 2),
                "retrieval_ms": round(float(np.median(retrieval)) * 1000, 2),
                "added_ms": round(float(np.median(grounded)) * 1000 - p, 2),
                "prompt_tokens": {"plain": tokens[0], "grounded": tokens[1]}}  # fmt: skip

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--no-text", action="store_true", help="skip the FTS5 rows")
    ap.add_argument("--build", action="store_true", help="pack build throughput (MiniLM)")
    ap.add_argument("--chat", action="store_true", help="grounded chat's added time to first token")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    load = os.getloadavg()
    out: dict[str, Any] = {"load_average": [round(v, 2) for v in load], "cores": os.cpu_count()}
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    names = [e for e in args.engines.split(",") if e]
    if sizes:
        out["engines"] = engines(sizes, names, args.queries, not args.no_text)
    with tempfile.TemporaryDirectory() as tmp:
        if args.build:
            out["build"] = build_throughput(Path(tmp))
            print(json.dumps(out["build"]))
        if args.chat:
            out["chat"] = grounded_ttft(Path(tmp), args.rounds)
            print(json.dumps(out["chat"]))
    out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
