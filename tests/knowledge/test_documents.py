"""Reading documents: structure kept (pages, headings), bad input refused naming the file."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from runtime.knowledge.chunking import ChunkOptions, chunk_blocks
from runtime.knowledge.documents import DocumentError, Limits, read_document
from tests.support.knowledge import write_manual_pdf
from tests.support.prereq import need_module


def test_markdown_headings_paragraphs_and_code(tmp_path: Path) -> None:
    doc = tmp_path / "sop.md"
    doc.write_text(
        "# Pump SOP\n\nIntro line.\n\n## Start-up\n\n- open valve V-1\n- start pump\n\n"
        "```\nsetpoint = 4 bar\n```\n\n### Alarms\n\nA high alarm trips at 6 bar.\n"
    )
    blocks = list(read_document(doc))
    assert [(b.heading, b.text.splitlines()[0]) for b in blocks] == [
        ("Pump SOP", "Intro line."),
        ("Pump SOP > Start-up", "- open valve V-1"),
        ("Pump SOP > Start-up", "- start pump"),
        ("Pump SOP > Start-up", "```"),
        ("Pump SOP > Start-up > Alarms", "A high alarm trips at 6 bar."),
    ]


def test_html_headings_and_blocks_without_scripts(tmp_path: Path) -> None:
    doc = tmp_path / "page.html"
    doc.write_text("<html><head><title>x</title><script>var a=1;</script></head><body>"
                   "<h1>Feeder</h1><p>Check the <b>liner</b> daily.</p><h2>Faults</h2>"
                   "<ul><li>F1: jam</li><li>F2: motor</li></ul></body></html>")  # fmt: skip
    blocks = list(read_document(doc))
    assert [(b.heading, b.text) for b in blocks] == [
        ("Feeder", "Check the liner daily."),
        ("Feeder > Faults", "F1: jam"),
        ("Feeder > Faults", "F2: motor"),
    ]


def test_pdf_pages_and_bookmarked_headings(tmp_path: Path) -> None:
    need_module("fpdf")
    blocks = list(read_document(write_manual_pdf(tmp_path / "manual.pdf")))
    torque = next(b for b in blocks if "450 Nm" in b.text)
    assert torque.page == 2 and torque.heading == "2 Main bearing"
    assert {b.page for b in blocks} == {1, 2, 3, 4, 5, 6}


def test_chunks_stay_inside_a_page_and_overlap(tmp_path: Path) -> None:
    doc = tmp_path / "long.md"
    sentences = " ".join(f"Step {i} tightens bolt B-{i} to {i * 10} Nm." for i in range(60))
    doc.write_text(f"# Bolts\n\n{sentences}\n\n# Other\n\nShort.\n")
    chunks = list(
        chunk_blocks(read_document(doc), ChunkOptions(target_chars=300, overlap_chars=80))
    )
    bolts = [c for c in chunks if c.heading == "Bolts"]
    assert len(bolts) > 3 and all(len(c.text) <= 300 + 80 + 1 for c in bolts)
    for before, after in itertools.pairwise(bolts):
        last = before.text.rsplit("Step ", 1)[1]
        assert after.text.startswith("Step ") and last.split()[0] in after.text[:120]
    assert chunks[-1].heading == "Other" and chunks[-1].text == "Short."


def test_encrypted_pdf_is_refused_naming_the_file(tmp_path: Path) -> None:
    need_module("fpdf")
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "secret torque table")
    pdf.set_encryption(owner_password="owner", user_password="user")
    path = tmp_path / "locked.pdf"
    pdf.output(str(path))
    with pytest.raises(DocumentError, match=r"locked\.pdf.*encrypted.*password"):
        list(read_document(path))


def test_scanned_pdf_without_text_is_refused(tmp_path: Path) -> None:
    need_module("fpdf")
    from fpdf import FPDF
    from PIL import Image

    picture = tmp_path / "scan.png"
    Image.new("L", (200, 100), 200).save(picture)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(picture), x=10, y=10, w=100)
    path = tmp_path / "scan.pdf"
    pdf.output(str(path))
    with pytest.raises(DocumentError, match=r"scan\.pdf.*no page .* text layer.*OCR"):
        list(read_document(path))


def test_malformed_pdf_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage\n%%EOF")
    with pytest.raises(DocumentError, match=r"broken\.pdf"):
        list(read_document(path))


def test_a_1_gib_document_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:  # sparse: no gigabyte is written or read
        f.truncate(1 << 30)
    with pytest.raises(DocumentError, match=r"huge\.txt: 1\.0 GiB is over the limit of 128 MiB"):
        list(read_document(path))


def test_text_past_the_character_cap_is_refused_while_streaming(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text("\n\n".join("alarm line " * 20 for _ in range(200)))
    with pytest.raises(DocumentError, match=r"log\.txt: more than 10000 characters"):
        list(read_document(path, Limits(max_document_chars=10_000)))


def test_not_utf8_and_unknown_types(tmp_path: Path) -> None:
    bad = tmp_path / "latin.txt"
    bad.write_bytes("Drehmoment \xfcber".encode("latin-1"))
    with pytest.raises(DocumentError, match=r"latin\.txt: not UTF-8"):
        list(read_document(bad))
    with pytest.raises(DocumentError, match=r"x\.docx: unknown document type"):
        list(read_document(tmp_path / "x.docx"))
    assert os.path.exists(bad)
