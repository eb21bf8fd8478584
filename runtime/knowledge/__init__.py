"""Site knowledge: documents -> knowledge packs -> search -> grounded answers.

Owns: reading documents (``documents``: PDF by pypdf, Markdown, HTML by html.parser,
text; caps and clear refusals), cutting them into chunks along their structure with
overlap (``chunking``), embedding through the inference service (``embedder``), the
embedder's identity and the one rule on which embedder may query a pack (``identity``),
the pack on disk (``pack``: manifest with sha256s, versions, the atomic active pointer),
the full-text index (``textindex``: SQLite FTS5, BM25) and the vector index
(``vectorindex``: exact or HNSW, chosen by bench/knowledge_bench.py), hybrid search in
OpenAI's vector store search shape (``search``), building a pack (``builder``), the
packs a box serves (``library``: open, switch, search, status, metrics), grounded chat
(``grounding``: retrieved chunks in the prompt, citations, retrieval as a tool), the
in-process service the CLI embeds with (``local``), a pack's golden questions and its
recall@k (``golden``), and what a box does with a delivered pack (``intake``: use it,
embed it again (``reembed``) or refuse it, then its trial; the fleet calls these). The
sentence-encoder converter is the factory's (runtime.factory.encoder_export).

May import: the foundation modules, config, catalog, backends, codecs, service, box and
loading. The transports (api/, mqtt/), the daemon and the CLI import this room; it
never imports them. Build-side work (``knowledge build``) needs no daemon.
"""

from __future__ import annotations

from runtime.knowledge.documents import DocumentError as DocumentError
from runtime.knowledge.documents import Limits as Limits
from runtime.knowledge.identity import EmbedderIdentity as EmbedderIdentity
from runtime.knowledge.library import KnowledgeLibrary as KnowledgeLibrary
from runtime.knowledge.library import PackRefused as PackRefused
from runtime.knowledge.pack import PackStore as PackStore
from runtime.knowledge.search import SearchRequest as SearchRequest
from runtime.knowledge.search import parse_search as parse_search
