"""Blocks -> chunks: cut along the document's structure, with overlap.

A chunk never crosses a file, a page or a heading, so its citation (file, page, heading)
is exact. Inside one such section consecutive blocks are joined up to ``target_chars``;
a block longer than that is cut at sentence ends (at word ends when a sentence alone is
too long). Each chunk after the first of a section starts with the last sentences of the
one before it, up to ``overlap_chars``, so an answer that straddles a cut is still whole
in one chunk.

Sizes are characters, not tokens: the chunker does not know the embedder's tokenizer.
The defaults keep a chunk well under a 256-token encoder for English text; a chunk the
embedder still refuses as too long is halved by the builder (runtime.knowledge.embedder).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from runtime.knowledge.documents import Block

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


@dataclass(frozen=True)
class ChunkOptions:
    target_chars: int = 700
    overlap_chars: int = 120

    def __post_init__(self) -> None:
        if self.target_chars < 50:
            raise ValueError("target_chars: at least 50")
        if not 0 <= self.overlap_chars < self.target_chars // 2:
            raise ValueError("overlap_chars: from 0 to half of target_chars")


@dataclass(frozen=True)
class Chunk:
    text: str
    source: str
    page: int | None
    heading: str | None

    def embedding_text(self) -> str:
        """What the embedder reads: the heading gives a short passage its subject."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def pieces(text: str, limit: int) -> Iterator[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at sentence then word ends."""
    if len(text) <= limit:
        yield text
        return
    for sentence in _SENTENCE_END.split(text):
        if len(sentence) <= limit:
            yield sentence
            continue
        words: list[str] = []
        size = 0
        for word in sentence.split():
            while len(word) > limit:  # one unbroken run (a hash, a URL)
                if words:
                    yield " ".join(words)
                    words, size = [], 0
                yield word[:limit]
                word = word[limit:]
            if size + len(word) + 1 > limit and words:
                yield " ".join(words)
                words, size = [], 0
            words.append(word)
            size += len(word) + 1
        if words:
            yield " ".join(words)


def _tail(text: str, limit: int) -> str:
    """The last whole sentences of ``text`` within ``limit`` characters ("" if none fit)."""
    if limit <= 0:
        return ""
    out: list[str] = []
    size = 0
    for sentence in reversed(_SENTENCE_END.split(text)):
        if size + len(sentence) + 1 > limit:
            break
        out.append(sentence)
        size += len(sentence) + 1
    return " ".join(reversed(out))


def chunk_blocks(blocks: Iterable[Block], options: ChunkOptions | None = None) -> Iterator[Chunk]:
    """Chunks in reading order (a generator: blocks are read as chunks are taken)."""
    opts = options or ChunkOptions()
    key: tuple[str, int | None, str | None] | None = None
    parts: list[str] = []
    size = 0
    previous = ""

    def emit() -> Iterator[Chunk]:
        nonlocal parts, size, previous
        if not parts or key is None:
            return
        body = "\n".join(parts)
        overlap = _tail(previous, opts.overlap_chars) if previous else ""
        text = f"{overlap} {body}" if overlap else body
        previous = body
        parts, size = [], 0
        yield Chunk(text, key[0], key[1], key[2])

    for block in blocks:
        here = (block.source, block.page, block.heading)
        if here != key:
            yield from emit()
            key, previous = here, ""
        for piece in pieces(block.text.strip(), opts.target_chars):
            if not piece:
                continue
            if size and size + len(piece) + 1 > opts.target_chars:
                yield from emit()
            parts.append(piece)
            size += len(piece) + 1
    yield from emit()
