"""`models select` and `models show` on a store where a variant's files are gone: the
choice is the one the loader will make, and both commands say what is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _repo_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADFRAME_PATHS__PROFILES_DIR", str(REPO / "device_profiles"))


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["models", *args])
    return result.exit_code, result.stdout, result.stderr


def _select(store: Path, *extra: str) -> tuple[int, Any]:
    code, out, _ = _cli("select", APP, "--store", str(store), "--json", *extra)
    return code, json.loads(out)


def test_select_passes_over_a_variant_whose_file_is_gone(tmp_path: Path) -> None:
    store = tmp_path / "store"
    package = write_linear_package(store)
    code, before = _select(store)
    assert code == 0
    first = before["chosen"]["variant"]
    other = next(v.id for v in package.variants if v.id != first)
    (package.variant(first).path / "model.onnx").unlink()

    code, after = _select(store)
    assert code == 0
    assert after["chosen"]["variant"] == other
    assert [c["variant"] for c in after["ranked"]] == [other]
    reasons = {r["variant"]: r["reason"] for r in after["rejected"]}
    assert reasons[first] == "files: model.onnx is missing"
    assert f"{first} would be chosen but files: model.onnx is missing" in after["reason"]
    code, text, _ = _cli("select", APP, "--store", str(store))
    assert code == 0 and f"chosen: {other} " in text
    assert f"rejected: {first} " in text and "model.onnx is missing" in text

    # a pinned variant with its file gone is not chosen either
    code, pinned = _select(store, "--variant", first)
    assert code == 3 and pinned["chosen"] is None and "model.onnx is missing" in pinned["reason"]

    # the other one truncated: nothing can load, exit 3
    model = package.variant(other).path / "model.onnx"
    size = model.stat().st_size
    model.write_bytes(model.read_bytes()[:100])
    code, none = _select(store)
    assert code == 3 and none["chosen"] is None
    reasons = {r["variant"]: r["reason"] for r in none["rejected"]}
    assert reasons[other] == f"files: model.onnx is 100 bytes, variant.toml says {size}"


def test_show_marks_variants_whose_files_are_missing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    package = write_linear_package(store)
    code, out, err = _cli("show", APP, "--store", str(store))
    assert code == 0 and "FILES" in out and "BROKEN" not in out and err == ""
    (package.variant("small").path / "model.onnx").unlink()
    code, out, err = _cli("show", APP, "--store", str(store))
    assert code == 0
    rows = {
        ln.split()[0]: ln.split()[-1]
        for ln in out.splitlines()
        if ln.startswith(("small", "large"))
    }
    assert rows == {"small": "BROKEN", "large": "ok"}
    assert "warning: small cannot load: model.onnx is missing" in err
    code, out, _ = _cli("show", APP, "--store", str(store), "--json")
    problems = {v["variant"]: v["file_problems"] for v in json.loads(out)["variants"]}
    assert problems == {"small": ["model.onnx is missing"], "large": []}
