"""CLI: ``headframe knowledge build|list|show|search``.

Parsing and printing only: reading, chunking, embedding and indexing are
runtime.knowledge; ``build`` and ``search`` run the embedding application in this
process (runtime.knowledge.local), so neither needs the daemon.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer

from runtime.cli.output import STORE_HELP, fail, print_json, print_table, resolve_store
from runtime.errors import HeadframeError, InvalidInput
from runtime.units import human_bytes

knowledge_app = typer.Typer(
    name="knowledge",
    help="Knowledge packs: documents indexed for search and grounded answers.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(knowledge_app)


@knowledge_app.command("build")
def build(
    documents: list[Path] = typer.Argument(
        ..., help="PDF, Markdown, HTML or text files, or directories."
    ),
    embedder: str = typer.Option(
        ..., "--embedder", help="The embedding application (in the store)."
    ),
    pack: str = typer.Option(..., "--pack", help="The pack's name."),
    version: str = typer.Option(..., "--version", help="The pack's version, e.g. 1.0.0."),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    chunk_chars: int = typer.Option(700, "--chunk-chars", help="Target characters per chunk."),
    overlap_chars: int = typer.Option(
        120, "--overlap-chars", help="Characters carried over between chunks."
    ),
    max_document_mb: int = typer.Option(128, "--max-document-mb", help="Refuse larger documents."),
    activate: bool = typer.Option(
        True, "--activate/--no-activate", help="Make this version the active one."
    ),
    replace: bool = typer.Option(False, "--replace", help="Overwrite that version if present."),
    golden: Path | None = typer.Option(
        None, "--golden", help="Golden questions (JSON: question -> chunks, or source and page)."
    ),
    golden_k: int = typer.Option(5, "--golden-k", help="Results each golden question may use."),
    recall_floor: float = typer.Option(
        0.8, "--recall-floor", help="Least recall@k of the golden questions (0-1)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the build report as JSON."),
) -> None:
    """Read, chunk, embed and index documents into a versioned pack in the store."""
    from runtime.config import load_settings
    from runtime.knowledge.builder import BuildOptions, build_pack, expand
    from runtime.knowledge.chunking import ChunkOptions
    from runtime.knowledge.documents import Limits
    from runtime.knowledge.embedder import ServiceEmbedder
    from runtime.knowledge.golden import read_questions
    from runtime.knowledge.local import local_service
    from runtime.knowledge.pack import check_name

    store = resolve_store(store_dir)
    try:
        opts = BuildOptions(
            documents=tuple(documents), embedder=embedder, pack=pack, version=version,
            store=store.root, chunking=ChunkOptions(chunk_chars, overlap_chars),
            limits=Limits(max_document_bytes=max_document_mb * 1024 * 1024),
            activate=activate, replace=replace, golden=golden, golden_k=golden_k,
            recall_floor_bp=round(recall_floor * 10_000),
        )  # fmt: skip
        check_name(pack, version)  # the cheap refusals before the embedder loads
        expand(opts.documents)
        if golden is not None:
            read_questions(golden)
    except ValueError as e:
        raise fail(str(e), 2) from e
    except HeadframeError as e:
        raise fail(e.message, 2) from e

    def progress(name: str, chunks: int) -> None:
        if not as_json:
            typer.echo(f"  {name}: {chunks} chunks so far", err=True)

    async def run() -> Any:
        async with local_service(load_settings(), store, [embedder]) as service:
            return await build_pack(opts, ServiceEmbedder(service, embedder), progress)

    try:
        report = asyncio.run(run())
    except InvalidInput as e:
        raise fail(e.message, 2) from e
    except HeadframeError as e:
        raise fail(e.message) from e
    data = {
        "pack": report.pack, "version": report.version, "path": str(report.path),
        "documents": report.documents, "chunks": report.chunks, "index": report.index,
        "seconds": round(report.seconds, 3), "chunks_per_s": round(report.chunks_per_s, 1),
        "embeddings_per_s": round(report.embeddings_per_s, 1),
        "split_chunks": report.split_chunks, "embedder": report.embedder.model_dump(),
        "golden": report.golden.model_dump() if report.golden else None,
    }  # fmt: skip
    if as_json:
        print_json(data)
        return
    typer.echo(
        f"built {report.pack} {report.version}: {report.documents} documents, "
        f"{report.chunks} chunks, {report.index} vector index, embedded with "
        f"{report.embedder.describe()}"
    )
    typer.echo(
        f"  {report.seconds:.1f} s: {report.chunks_per_s:.0f} chunks/s (the embedder alone: "
        f"{report.embeddings_per_s:.0f} embeddings/s)"
    )
    if report.golden is not None:
        g = report.golden
        typer.echo(f"  golden: recall@{g.k} {g.recall_bp / 100:.1f}% of {g.questions} questions "
                   f"(floor {g.recall_floor_bp / 100:.1f}%)")  # fmt: skip
    typer.echo(f"  {report.path}" + ("" if activate else "  (not active: --no-activate)"))


def _summary(store_root: Path, name: str) -> dict[str, Any]:
    from runtime.knowledge.pack import PackStore

    packs = PackStore(store_root)
    entry: dict[str, Any] = {"pack": name, "versions": packs.versions(name)}
    try:
        path, m = packs.manifest(name)
        size = sum(f.size for f in m.files.values())
        entry |= {"active_version": m.version, "chunks": m.chunks, "documents": len(m.sources),
                  "embedder": m.embedder.describe(), "index": m.engine.vector, "bytes": size,
                  "path": str(path)}  # fmt: skip
    except HeadframeError as e:
        entry["error"] = e.message
    return entry


@knowledge_app.command("list")
def list_packs(
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="One JSON array on stdout."),
) -> None:
    """Every pack in the store: active version, chunks, embedder, index size."""
    from runtime.knowledge.pack import PackStore

    store = resolve_store(store_dir)
    entries = [_summary(store.root, n) for n in PackStore(store.root).packs()]
    if as_json:
        print_json(entries)
        return
    if not entries:
        typer.echo(f"no knowledge packs in {store.root} (try: headframe knowledge build)")
        return
    rows = [[e["pack"], e.get("active_version", "-"), ", ".join(e["versions"]),
             str(e.get("chunks", "-")), e.get("embedder", e.get("error", "-")),
             e.get("index", "-"), human_bytes(e["bytes"]) if "bytes" in e else "-"]
            for e in entries]  # fmt: skip
    print_table(["PACK", "ACTIVE", "VERSIONS", "CHUNKS", "EMBEDDER", "INDEX", "BYTES"], rows)


@knowledge_app.command("show")
def show(
    pack: str = typer.Argument(..., help="The pack's name."),
    version: str | None = typer.Option(None, "--version", help="Default: the active version."),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="The manifest as JSON."),
) -> None:
    """One pack's manifest: embedder, engine, sources and files."""
    from runtime.knowledge.pack import PackStore

    store = resolve_store(store_dir)
    try:
        path, m = PackStore(store.root).manifest(pack, version)
    except HeadframeError as e:
        raise fail(e.message) from e
    if as_json:
        print_json({**m.model_dump(mode="json"), "path": str(path)})
        return
    typer.echo(f"{m.pack} {m.version}  {path}")
    typer.echo(f"  created {m.created}; {m.chunks} chunks from {len(m.sources)} documents")
    typer.echo(f"  embedder: {m.embedder.describe()} digest {m.embedder.variant_digest[:16]}")
    typer.echo(f"  index: {m.engine.vector} vectors + {m.engine.text} (BM25)")
    typer.echo("")
    rows = [[s.file, str(s.chunks), human_bytes(s.bytes), s.sha256[:16]] for s in m.sources]
    print_table(["DOCUMENT", "CHUNKS", "BYTES", "SHA256"], rows)


@knowledge_app.command("search")
def search(
    pack: str = typer.Argument(..., help="The pack's name."),
    query: str = typer.Argument(..., help="The question or terms."),
    results: int = typer.Option(5, "-n", "--results", help="How many results (1-50)."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, vector or text."),
    store_dir: Path | None = typer.Option(None, "--store", help=STORE_HELP),
    as_json: bool = typer.Option(False, "--json", help="OpenAI's search results page as JSON."),
) -> None:
    """Search a pack here, with its embedder loaded in this process."""
    from runtime.config import load_settings
    from runtime.knowledge.library import KnowledgeLibrary
    from runtime.knowledge.local import local_service
    from runtime.knowledge.pack import PackStore
    from runtime.knowledge.search import parse_search, response, result_item

    store = resolve_store(store_dir)
    try:
        request = parse_search({"query": query, "max_num_results": results, "mode": mode})
        _, manifest = PackStore(store.root).manifest(pack)
    except HeadframeError as e:
        raise fail(e.message, 2) from e
    apps = [] if mode == "text" else [manifest.embedder.app]

    async def run() -> Any:
        async with local_service(load_settings(), store, apps) as service:
            library = KnowledgeLibrary(store.root, service)
            library.refresh()
            return await library.search(pack, request)

    try:
        opened, hits = asyncio.run(run())
    except HeadframeError as e:
        raise fail(e.message) from e
    items = [result_item(pack, opened.version, h) for h in hits]
    if as_json:
        print_json(response(request.queries(), items))
        return
    for i, h in enumerate(hits, start=1):
        where = h.row.source + (f" p.{h.row.page}" if h.row.page else "")
        typer.echo(f"[{i}] {h.score:.3f}  {where}  {h.row.heading or ''}".rstrip())
        typer.echo(f"    {h.row.text[:300]}")
    if not hits:
        typer.echo("no results")
