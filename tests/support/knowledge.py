"""Documents and packs for the knowledge tests: made here, embedded by the real MiniLM.

- ``write_manual_pdf``: a crusher maintenance manual written with fpdf2 (bookmarked
  numbered sections, one subject a page, a parts catalogue of near-identical rows told
  apart only by their part numbers); ``MANUAL_FACTS`` say on which page each fact is.
- ``write_stdlib_corpus``: the Python standard library's own docstrings as Markdown, one
  file a module and one heading a function: an offline corpus whose every chunk is known,
  with ``STDLIB_QUESTIONS`` (plain questions and the function that answers each).
- ``build(store, documents, pack, version)``: a pack built by runtime.knowledge.builder
  through an InferenceService holding ``minilm`` (tests.support.loaders.ort_loader).
- ``write_manual_golden``: the manual's facts as golden questions (source and page);
  ``as_version`` and ``with_golden_chunks``: a built pack copied under another version, or
  with other expected chunks (a pack that fails its trial), its manifest kept true.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.minilm import APP

PART_NUMBERS = [f"SK-{1000 + i * 7}" for i in range(24)]

# (question, page, words the answer holds)
MANUAL_FACTS = [
    ("What torque for the main bearing bolts?", 2, "450 Nm"),
    ("How often is the eccentric shaft greased?", 3, "250 operating hours"),
    ("Which part number is the belt scraper blade?", 4, "SC-2291"),
    ("What does error code E-4711 mean?", 5, "seal"),
]

_PAGES = [
    (
        "1 Safety",
        [
            "Lock out and tag out the crusher before any work. Wait for the flywheel to stop.",
            "Wear hearing protection near the crushing chamber. Never stand on the feeder.",
        ],
    ),
    (
        "2 Main bearing",
        [
            "The main bearing housing is fastened with twelve M24 bolts. Tighten the main "
            "bearing bolts to 450 Nm with the hydraulic wrench, in a star pattern.",
            "Check the torque of the main bearing bolts weekly and after every overload trip.",
        ],
    ),
    (
        "3 Lubrication",
        [
            "Grease the eccentric shaft bearings every 250 operating hours with EP2 grease.",
            "Do not mix grease types. Purge old grease until clean grease appears at the seal.",
        ],
    ),
    (
        "4 Conveyor belt",
        [
            "The discharge conveyor belt scraper blade is part SC-2291. Replace the scraper "
            "blade when it wears below 10 mm.",
            "Adjust the belt tension so that the belt sags no more than 2 percent between idlers.",
        ],
    ),
    (
        "5 Fault codes",
        [
            "Error code E-4711: the lubrication pump P-203 lost pressure because its shaft seal "
            "failed. Stop the crusher and replace the seal kit.",
            "Error code E-5020: the main motor winding is over temperature. Let it cool down and "
            "check the cooling fan.",
        ],
    ),
]


def write_manual_pdf(path: Path) -> Path:
    """Six pages: five bookmarked sections, then the parts catalogue."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("CR-450 crusher maintenance manual")
    for title, paragraphs in _PAGES:
        pdf.add_page()
        pdf.start_section(title)
        pdf.set_font("Helvetica", size=16)
        pdf.multi_cell(0, 10, title)
        pdf.set_font("Helvetica", size=11)
        for para in paragraphs:
            pdf.ln(4)
            pdf.multi_cell(0, 6, para)
    pdf.add_page()
    pdf.start_section("6 Spare parts")
    pdf.set_font("Helvetica", size=16)
    pdf.multi_cell(0, 10, "6 Spare parts")
    pdf.set_font("Helvetica", size=11)
    for i, number in enumerate(PART_NUMBERS):
        pdf.ln(3)
        pdf.multi_cell(0, 6, f"Seal kit {number} for bearing housing size {i % 3 + 1}, "
                             "nitrile lip seal with O-rings and grease.")  # fmt: skip
    pdf.output(str(path))
    return path


_STDLIB_MODULES = (
    "json", "os.path", "shutil", "textwrap", "statistics", "difflib", "heapq", "bisect",
    "fnmatch", "ipaddress", "tempfile", "csv", "urllib.parse", "email.utils", "collections",
    "string", "base64", "hashlib", "glob", "calendar", "fractions", "zipfile", "gzip",
    "random", "secrets",
)  # fmt: skip

# (question, "module.function" that answers it)
STDLIB_QUESTIONS = [
    ("How do I find the middle value of a list of numbers?", "statistics.median"),
    ("Split a file path into its directory and file name", "os.path.split"),
    ("Copy a whole directory tree recursively", "shutil.copytree"),
    ("Where would an item be inserted to keep a sorted list sorted?", "bisect.bisect_left"),
    ("Merge several sorted inputs into one sorted output", "heapq.merge"),
    ("Percent-encode special characters for a URL", "urllib.parse.quote"),
    ("Turn a Python object into a JSON formatted string", "json.dumps"),
    ("Find the closest matching words from a list of possibilities", "difflib.get_close_matches"),
    ("Remove the common leading whitespace from every line of a text", "textwrap.dedent"),
    ("Wrap a paragraph so that no line is longer than a width", "textwrap.wrap"),
    ("Create a temporary directory securely", "tempfile.mkdtemp"),
    ("Get the n largest elements from a dataset", "heapq.nlargest"),
    ("Match a filename against a shell wildcard pattern", "fnmatch.fnmatch"),
    ("Parse an RFC 2822 date from an email into a datetime", "email.utils.parsedate_to_datetime"),
    ("Expand a user's home directory tilde in a path", "os.path.expanduser"),
    ("Remove a directory and everything in it", "shutil.rmtree"),
    ("Compute the standard deviation of a sample", "statistics.stdev"),
    ("Generate a random URL-safe text token", "secrets.token_urlsafe"),
    ("Decode base64 encoded data back to bytes", "base64.b64decode"),
    ("Is a given year a leap year?", "calendar.isleap"),
    ("Find all path names matching a pattern", "glob.glob"),
    ("Choose a random element from a sequence", "random.choice"),
]


def write_stdlib_corpus(root: Path) -> Path:
    """One Markdown file a module: ``# module``, then ``## module.function`` + docstring."""
    root.mkdir(parents=True, exist_ok=True)
    for name in _STDLIB_MODULES:
        module = importlib.import_module(name)
        lines = [f"# {name}", "", inspect.getdoc(module) or "", ""]
        for attr, obj in sorted(vars(module).items()):
            if attr.startswith("_") or not callable(obj):
                continue
            if getattr(obj, "__module__", name) not in (name, module.__name__):
                continue
            doc = inspect.getdoc(obj)
            if not doc or len(doc) < 40:
                continue
            lines += [f"## {name}.{attr}", "", doc, ""]
        (root / f"{name}.md").write_text("\n".join(lines))
    return root


async def _build(store: Path, documents: Sequence[Path], pack: str, version: str,
                 **kw: Any) -> Any:  # fmt: skip
    from runtime.catalog import Store
    from runtime.knowledge.builder import BuildOptions, build_pack
    from runtime.knowledge.embedder import ServiceEmbedder
    from runtime.service import InferenceService
    from tests.support.loaders import ort_loader

    service = InferenceService(ort_loader)
    try:
        await service.add(Store(store).load(APP))
        opts = BuildOptions(documents=tuple(documents), embedder=APP, pack=pack,
                            version=version, store=store, **kw)  # fmt: skip
        return await build_pack(opts, ServiceEmbedder(service, APP))
    finally:
        await service.close()


def build(store: Path, documents: Sequence[Path], pack: str, version: str, **kw: Any) -> Any:
    """Build and install a pack with MiniLM; the BuildReport."""
    return asyncio.run(_build(store, documents, pack, version, **kw))


@dataclass
class Packs:
    store: Path
    docs: Path
    reports: dict[str, Any]


def make_packs(root: Path, *, stdlib: bool = True) -> Packs:
    """A store at ``root/store`` with MiniLM, ``manuals`` 1.0.0 (manual.pdf) and, unless
    told otherwise, ``stdlib`` 1.0.0 (the docstrings); the documents under ``root/docs``."""
    from tests.support.minilm import minilm_store

    store = minilm_store(root / "store")
    docs = root / "docs"
    docs.mkdir()
    reports = {"manuals": build(store, [write_manual_pdf(docs / "manual.pdf")], "manuals", "1.0.0")}
    if stdlib:
        reports["stdlib"] = build(store, [write_stdlib_corpus(docs / "stdlib")], "stdlib", "1.0.0")
    return Packs(store, docs, reports)


def write_manual_golden(path: Path) -> Path:
    """MANUAL_FACTS as a ``knowledge build --golden`` file (source and page)."""
    import json

    items = [{"question": q, "source": "manual.pdf", "page": page} for q, page, _ in MANUAL_FACTS]
    path.write_text(json.dumps(items, indent=1))
    return path


def as_version(vdir: Path, dest_root: Path, version: str) -> Path:
    """A copy of the pack version ``vdir`` as ``version`` under ``dest_root/<pack>/``
    (the same chunks and vectors; only the manifest's version differs)."""
    import json
    import shutil

    doc = json.loads((vdir / "manifest.json").read_text())
    dest = dest_root / doc["pack"] / version
    shutil.copytree(vdir, dest)
    (dest / "manifest.json").write_text(json.dumps({**doc, "version": version}, indent=2))
    return dest


def with_golden_chunks(vdir: Path, chunks: list[int]) -> None:
    """Every golden question of the pack at ``vdir`` now expects ``chunks`` (its manifest's
    sha256 of golden.json made true again): a pack whose trial fails."""
    import json

    from runtime.files import sha256_file

    golden = vdir / "golden.json"
    items = json.loads(golden.read_text())
    golden.write_text(json.dumps([{**q, "chunks": chunks} for q in items]))
    doc = json.loads((vdir / "manifest.json").read_text())
    doc["files"]["golden.json"] = {"sha256": sha256_file(golden), "size": golden.stat().st_size}
    (vdir / "manifest.json").write_text(json.dumps(doc, indent=2))
