"""`headframe knowledge build|list|show|search` through the real CLI, in this process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from tests.support.minilm import minilm_store

pytestmark = pytest.mark.slow


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_build_list_show_search(packs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = minilm_store(tmp_path / "store")
    docs = tmp_path / "docs"
    docs.mkdir()
    sop = "Clear a feeder jam only after lock-out. Fault F-17 means the apron feeder is jammed."
    (docs / "sop.md").write_text(f"# Feeder SOP\n\n## Jams\n\n{sop}\n")
    (docs / "notes.txt").write_text("Shift notes.\n\nThe screen deck was replaced on Monday.\n")
    code, out, err = run("knowledge", "build", str(docs), str(packs.docs / "manual.pdf"),
                         "--embedder", "minilm", "--pack", "site", "--version", "1.0.0",
                         "--store", str(store), "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["documents"] == 3 and report["chunks"] > 8 and report["index"] == "exact"
    assert report["embedder"]["app"] == "minilm" and report["chunks_per_s"] > 0
    code, out, _ = run("knowledge", "list", "--store", str(store))
    assert code == 0 and "site" in out and "minilm 1.0.0 (onnx-fp32, 384 dimensions)" in out
    code, out, _ = run("knowledge", "show", "site", "--store", str(store))
    assert code == 0 and "sop.md" in out and "notes.txt" in out and "manual.pdf" in out
    code, out, err = run("knowledge", "search", "site", "F-17", "--store", str(store))
    assert code == 0, err
    assert out.startswith("[1]") and "sop.md" in out.splitlines()[0] and "F-17" in out
    code, _, err = run("knowledge", "build", str(docs), "--embedder", "minilm", "--pack", "site",
                       "--version", "1.0.0", "--store", str(store))  # fmt: skip
    assert code == 2 and "already in" in err


def test_build_refuses_clearly(tmp_path: Path) -> None:
    store = tmp_path / "empty"
    doc = tmp_path / "a.md"
    doc.write_text("# A\n\ntext\n")
    code, _, err = run("knowledge", "build", str(doc), "--embedder", "nope", "--pack", "p",
                       "--version", "1.0.0", "--store", str(store))  # fmt: skip
    assert code == 1 and "embedder 'nope' is not in the store" in err
    code, _, err = run("knowledge", "build", str(tmp_path / "missing.pdf"), "--embedder", "nope",
                       "--pack", "p", "--version", "1.0.0", "--store", str(store))  # fmt: skip
    assert code == 2 and "missing.pdf: no such file" in err
    code, _, err = run("knowledge", "build", str(doc), "--embedder", "nope", "--pack", "Bad Name",
                       "--version", "1.0.0", "--store", str(store))  # fmt: skip
    assert code == 2 and "not a valid pack name" in err


def test_build_with_golden_questions(packs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from runtime.knowledge.pack import PackStore
    from tests.support.knowledge import write_manual_golden

    store = minilm_store(tmp_path / "store")
    pdf = str(packs.docs / "manual.pdf")
    golden = write_manual_golden(tmp_path / "golden.json")
    code, out, err = run("knowledge", "build", pdf, "--embedder", "minilm", "--pack", "manuals",
                         "--version", "1.0.0", "--store", str(store),
                         "--golden", str(golden))  # fmt: skip
    assert code == 0, err
    assert "golden: recall@5 100.0% of 4 questions (floor 80.0%)" in out
    vdir, manifest = PackStore(store).manifest("manuals")
    assert manifest.golden is not None and manifest.golden.recall_bp == 10_000
    saved = json.loads((vdir / "golden.json").read_text())
    assert saved[0]["expect"] == "manual.pdf page 2" and saved[0]["chunks"]
    assert "golden.json" in manifest.files

    # Questions the pack cannot answer well enough: the build fails, nothing is installed.
    hard = tmp_path / "hard.json"
    questions = ["What torque for the main bearing bolts?", "What does error code E-4711 mean?"]
    hard.write_text(json.dumps([{"question": q, "source": "manual.pdf", "page": 1}
                                for q in questions]))  # fmt: skip
    code, _, err = run("knowledge", "build", pdf, "--embedder", "minilm", "--pack", "manuals",
                       "--version", "1.1.0", "--store", str(store), "--golden", str(hard),
                       "--golden-k", "1", "--recall-floor", "1")  # fmt: skip
    assert code == 2 and "below the floor 10000 bp: the pack is not installed" in err
    assert PackStore(store).versions("manuals") == ["1.0.0"]
    # Bad golden files are refused before anything is embedded, naming the question.
    for body, why in (
        ("{}", "a JSON list of questions"),
        ('[{"question": "q"}]', "question 1: name the expected chunks or their source"),
        ('[{"question": "q", "page": 2}]', "question 1:"),
        ('[{"question": "q", "source": "other.pdf"}]', "question 1: no chunk of the pack is "
                                                       "from other.pdf"),
    ):  # fmt: skip
        bad = tmp_path / "bad.json"
        bad.write_text(body)
        code, _, err = run("knowledge", "build", pdf, "--embedder", "minilm", "--pack", "x",
                           "--version", "1.0.0", "--store", str(store),
                           "--golden", str(bad))  # fmt: skip
        assert code == 2 and why in err, err
