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
