"""Documents in, blocks of text out: PDF, Markdown, HTML and plain text.

``read_document(path, limits)`` yields ``Block``s (one paragraph, list item, table cell
or code block each) with where it came from: the file, the page (PDFs, 1-based) and the
heading it sits under. Structure is what the chunker cuts along, so each reader keeps it:
PDF pages and their outline (bookmarks) or numbered section lines, Markdown's ATX
headings and fenced code, HTML's h1-h6 and block elements (the standard library's
``html.parser``: tolerant of real-world markup, no dependency), blank-line paragraphs in
text.

Bad input is refused with ``DocumentError`` naming the file and what is wrong: a file
over ``limits.max_document_bytes`` (checked before a byte is read), an encrypted PDF
that needs a password, a PDF with no text layer (scanned), a malformed PDF, text that is
not UTF-8, a document whose text passes ``limits.max_document_chars``. Text files are
read line by line, never whole, so memory stays bounded by the caps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from runtime.errors import InvalidInput
from runtime.units import human_bytes

log = logging.getLogger(__name__)

SUFFIXES = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}


class DocumentError(InvalidInput):
    """A document cannot be read; the message names the file and the reason."""

    code = "bad_document"


@dataclass(frozen=True)
class Limits:
    """Caps on what one document may make the builder hold."""

    max_document_bytes: int = 128 * 1024 * 1024
    max_document_chars: int = 32 * 1024 * 1024
    max_pages: int = 20_000


@dataclass(frozen=True)
class Block:
    """One unit of text: a paragraph, list item, cell or code block."""

    text: str
    source: str  # the file name as given (relative names stay relative)
    page: int | None = None
    heading: str | None = None


def kind_of(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(
            f"{path}: unknown document type {path.suffix or '(no suffix)'!r}; "
            f"headframe reads {', '.join(sorted(set(SUFFIXES)))}"
        )
    return kind


def read_document(
    path: Path, limits: Limits | None = None, source: str | None = None
) -> Iterator[Block]:
    """The blocks of one document, in reading order (a generator: the caller streams)."""
    limits = limits or Limits()
    path = Path(path)
    kind = kind_of(path)
    if not path.is_file():
        raise DocumentError(f"{path}: no such file")
    size = path.stat().st_size
    if size > limits.max_document_bytes:
        raise DocumentError(
            f"{path}: {human_bytes(size)} is over the limit of "
            f"{human_bytes(limits.max_document_bytes)} per document (--max-document-mb); "
            "split it or raise the limit"
        )
    name = source or path.name
    counted = _Counter(path, limits.max_document_chars)
    if kind == "pdf":
        blocks = _pdf(path, name, limits)
    elif kind == "markdown":
        blocks = _markdown(_lines(path), name)
    elif kind == "html":
        blocks = _html(path, name)
    else:
        blocks = _text(_lines(path), name)
    for block in blocks:
        counted.add(block.text)
        yield block


class _Counter:
    def __init__(self, path: Path, cap: int) -> None:
        self.path, self.cap, self.chars = path, cap, 0

    def add(self, text: str) -> None:
        self.chars += len(text)
        if self.chars > self.cap:
            raise DocumentError(
                f"{self.path}: more than {self.cap} characters of text (the per-document "
                "limit); split it"
            )


def _lines(path: Path) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8") as f:
            yield from f
    except UnicodeDecodeError as e:
        raise DocumentError(f"{path}: not UTF-8 text (byte {e.start}): convert it first") from e


def _paragraphs(lines: Iterator[str]) -> Iterator[str]:
    para: list[str] = []
    for line in lines:
        if line.strip():
            para.append(line.strip())
        elif para:
            yield " ".join(para)
            para = []
    if para:
        yield " ".join(para)


def _text(lines: Iterator[str], name: str) -> Iterator[Block]:
    for para in _paragraphs(lines):
        yield Block(para, name)


# --- Markdown ----------------------------------------------------------------------------

_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _markdown(lines: Iterator[str], name: str) -> Iterator[Block]:
    """ATX headings set the heading path ("Maintenance > Main bearing"); paragraphs, list
    items and fenced code are blocks. Setext headings and HTML inside Markdown stay text."""
    path: list[tuple[int, str]] = []
    para: list[str] = []
    fence: str | None = None

    def flush() -> Iterator[Block]:
        if para:
            heading = " > ".join(t for _, t in path) or None
            yield Block("\n".join(para).strip(), name, heading=heading)
            para.clear()

    for raw in lines:
        line = raw.rstrip("\n")
        if fence is not None:
            para.append(line)
            if line.strip().startswith(fence):
                fence = None
                yield from flush()
            continue
        m = _FENCE.match(line)
        if m:
            yield from flush()
            fence = m.group(1)
            para.append(line)
            continue
        h = _ATX.match(line)
        if h:
            yield from flush()
            level = len(h.group(1))
            path[:] = [p for p in path if p[0] < level] + [(level, h.group(2))]
            continue
        if not line.strip():
            yield from flush()
        elif re.match(r"^\s*([-*+]|\d+[.)])\s+", line) and para:
            yield from flush()  # a list item starts a block of its own
            para.append(line.strip())
        else:
            para.append(line.strip())
    yield from flush()


# --- HTML --------------------------------------------------------------------------------

_BLOCK_TAGS = {
    "p", "li", "pre", "td", "th", "dd", "dt", "blockquote", "div", "section", "article",
    "caption", "figcaption", "tr", "table", "ul", "ol", "br", "main",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "noscript", "template", "head", "svg"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class _Html(HTMLParser):
    def __init__(self, name: str) -> None:
        super().__init__(convert_charrefs=True)
        self.name = name
        self.blocks: list[Block] = []
        self.text: list[str] = []
        self.path: list[tuple[int, str]] = []
        self.skip = 0
        self.heading_level = 0

    def _flush(self) -> None:
        text = " ".join(" ".join(self.text).split())
        self.text.clear()
        if not text:
            return
        if self.heading_level:
            self.path = [p for p in self.path if p[0] < self.heading_level]
            self.path.append((self.heading_level, text))
            return
        heading = " > ".join(t for _, t in self.path) or None
        self.blocks.append(Block(text, self.name, heading=heading))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _HEADINGS:
            self._flush()
            self.heading_level = int(tag[1])
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _HEADINGS:
            self._flush()
            self.heading_level = 0
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.text.append(data)


def _html(path: Path, name: str) -> Iterator[Block]:
    parser = _Html(name)
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            while piece := f.read(1 << 16):
                parser.feed(piece)
                yield from parser.blocks
                parser.blocks.clear()
        parser.close()
        parser._flush()
    except AssertionError as e:  # html.parser's way of saying "malformed"
        raise DocumentError(f"{path}: malformed HTML: {e}") from e
    yield from parser.blocks


# --- PDF ---------------------------------------------------------------------------------

# A line that looks like a numbered section heading: "4.2 Main bearing", "7 Faults".
_NUMBERED = re.compile(r"^(\d+(?:\.\d+){0,3})\.?\s+([A-Z][^.!?]{1,80})$")


def _pdf(path: Path, name: str, limits: Limits) -> Iterator[Block]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError as e:  # pragma: no cover - an install problem
        raise DocumentError(f"{path}: reading PDF needs pypdf (headframe[knowledge])") from e
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(
                f"{path}: the PDF is encrypted and needs a password; decrypt it first "
                "(e.g. qpdf --decrypt --password=... in.pdf out.pdf)"
            )
        pages = len(reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise DocumentError(f"{path}: not a readable PDF: {e}") from e
    except Exception as e:  # pypdf raises a wide range on broken files
        if type(e).__name__ == "DependencyError":
            raise DocumentError(f"{path}: the PDF is encrypted with AES: {e}") from e
        raise DocumentError(f"{path}: not a readable PDF: {e}") from e
    if pages > limits.max_pages:
        raise DocumentError(f"{path}: {pages} pages is over the limit of {limits.max_pages}")
    outline = _outline_by_page(reader)
    heading: str | None = None
    found_text = False
    for number in range(1, pages + 1):
        heading = outline.get(number, heading)
        try:
            text = reader.pages[number - 1].extract_text() or ""
        except Exception as e:  # one broken page content stream
            raise DocumentError(f"{path}: page {number} cannot be read: {e}") from e
        if not text.strip():
            log.info("%s: page %d has no text (an image or a blank page)", path, number)
            continue
        found_text = True
        for para in _pdf_paragraphs(text):
            m = _NUMBERED.match(para)
            if m and len(para) <= 90:
                heading = para
                continue
            yield Block(para, name, page=number, heading=heading)
    if not found_text:
        raise DocumentError(
            f"{path}: no page of its {pages} has a text layer (a scanned PDF?); run OCR "
            "on it first (e.g. ocrmypdf)"
        )


def _pdf_paragraphs(text: str) -> Iterator[str]:
    """pypdf's lines -> paragraphs: blank lines split, and so does a numbered heading line
    or a line that ends a sentence followed by a short line (a layout break)."""
    para: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if para:
                yield " ".join(para)
                para = []
            continue
        if _NUMBERED.match(line) and len(line) <= 90:
            if para:
                yield " ".join(para)
                para = []
            yield line
            continue
        para.append(line)
        if line.endswith((".", ":", ";")) and len(" ".join(para)) > 400:
            yield " ".join(para)
            para = []
    if para:
        yield " ".join(para)


def _outline_by_page(reader: object) -> dict[int, str]:
    """Bookmarks -> {first page: title}; empty when the PDF has none or they are broken."""
    found: dict[int, str] = {}
    try:
        outline = reader.outline  # type: ignore[attr-defined]
    except Exception:
        return found

    def walk(items: list[object]) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
                continue
            try:
                page = reader.get_destination_page_number(item) + 1  # type: ignore[attr-defined]
                found.setdefault(page, str(item.title))  # type: ignore[attr-defined]
            except Exception:
                continue

    walk(list(outline or []))
    return found
