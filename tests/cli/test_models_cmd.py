"""`headframe models list/show/add` and `headframe demo build`, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.cli import app
from tests.support.gguf_models import write_llama_gguf

APP = "part-id-reader"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _variant_file(demo_store: Path, variant: str, name: str) -> Path:
    return demo_store / APP / "1.0.0" / "variants" / variant / name


def test_list_json_shows_the_demo(demo_store: Path) -> None:
    code, out, _ = run("models", "list", "--store", str(demo_store), "--json")
    assert code == 0
    (entry,) = json.loads(out)
    assert entry["application"] == APP
    assert entry["active_version"] == "1.0.0"
    assert entry["task"] == "tensor"
    assert len(entry["variants"]) == 5
    smallest = min(v.meta.bytes for v in Store(demo_store).load(APP).variants)
    assert entry["smallest_bytes"] == smallest


def test_list_text_and_empty_store(demo_store: Path, tmp_path: Path) -> None:
    code, out, _ = run("models", "list", "--store", str(demo_store))
    assert code == 0 and APP in out and "1.0.0" in out
    code, out, _ = run("models", "list", "--store", str(tmp_path / "empty"))
    assert code == 0 and "no models" in out and "demo build" in out


def test_list_reports_a_broken_package_without_hiding_others(
    demo_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    broken = shutil.copytree(store / APP, store / "other-app")
    (broken / "1.0.0" / "variants" / "fp32" / "variant.toml").write_text("bytes = -3\n")
    code, out, _ = run("models", "list", "--store", str(store), "--json")
    assert code == 0
    by_app = {e["application"]: e for e in json.loads(out)}
    assert "variants" in by_app[APP]
    assert "fp32/variant.toml" in by_app["other-app"]["error"]


def test_show_prints_measured_figures(demo_store: Path) -> None:
    package = Store(demo_store).load(APP)
    code, out, _ = run("models", "show", APP, "--store", str(demo_store))
    assert code == 0
    assert "digits-mlp-base -> manufacturing -> part-id-reader" in out
    assert "pixels FP32 [-1, 64]" in out
    for v in package.variants:
        line = next(line for line in out.splitlines() if line.startswith(v.id + " "))
        assert f"{v.meta.accuracy_bp / 100:.2f}%" in line
        assert f" {v.meta.pruning_bp // 100}% " in line  # the pruning column, whole percent
    code, out, _ = run("models", "show", APP, "--store", str(demo_store), "--json")
    data = json.loads(out)
    assert {v["variant"]: v["accuracy_bp"] for v in data["variants"]} == {
        v.id: v.meta.accuracy_bp for v in package.variants
    }


def test_show_unknown_app_is_a_clear_error(demo_store: Path) -> None:
    code, _, err = run("models", "show", "no-such-app", "--store", str(demo_store))
    assert code == 1
    assert "no application 'no-such-app'" in err


def test_add_onnx_file_measures_what_it_can(demo_store: Path, tmp_path: Path) -> None:
    src = tmp_path / "My Reader.onnx"
    shutil.copy(_variant_file(demo_store, "pruned75-int8", "model.onnx"), src)
    store = tmp_path / "store"
    code, out, err = run("models", "add", str(src), "--store", str(store), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["application"] == "my-reader" and data["version"] == "1.0.0"
    assert data["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert data["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    (v,) = data["variants"]
    assert (v["format"], v["precision"], v["variant"]) == ("onnx", "int8", "onnx-int8")
    assert v["files"] == [
        {"path": "My Reader.onnx", "sha256": _sha(src), "size": src.stat().st_size}
    ]
    assert v["bytes"] == src.stat().st_size
    assert v["peak_memory_bytes"] > v["bytes"]
    assert v["accuracy_bp"] is None  # nobody measured it: not a made-up number
    # the store now serves it
    assert Store(store).load("my-reader").variant("onnx-int8").entrypoint.is_file()


def test_add_openvino_ir_takes_the_bin_along(demo_store: Path, tmp_path: Path) -> None:
    src_dir = _variant_file(demo_store, "pruned50-openvino-fp16", "model.xml").parent
    xml = tmp_path / "ir" / "reader.xml"
    xml.parent.mkdir()
    shutil.copy(src_dir / "model.xml", xml)
    store = tmp_path / "store"
    code, _, err = run("models", "add", str(xml), "--store", str(store), "--app", "reader")
    assert code == 2 and "reader.bin must sit beside it" in err
    shutil.copy(src_dir / "model.bin", xml.with_suffix(".bin"))
    code, _, err = run(
        "models", "add", str(xml), "--store", str(store), "--app", "reader", "--version", "3.1"
    )
    assert code == 0, err
    v = Store(store).load("reader", "3.1").variant("openvino-fp16")
    assert v.meta.format == "openvino" and v.meta.precision == "fp16"
    assert {f.path for f in v.meta.files} == {"reader.xml", "reader.bin"}
    assert "npu" in v.meta.device_classes


@pytest.mark.parametrize(("precision", "expected"), [("q8_0", "q8_0"), ("f16", "fp16")])
def test_add_gguf_reads_its_file_type(tmp_path: Path, precision: str, expected: str) -> None:
    gguf_path = write_llama_gguf(tmp_path / "chat.gguf", size="tiny", precision=precision)  # type: ignore[arg-type]
    store = tmp_path / "store"
    code, _, err = run("models", "add", str(gguf_path), "--app", "chat", "--store", str(store))
    assert code == 0, err
    package = Store(store).load("chat")
    assert package.meta.task == "text"
    (v,) = package.variants
    assert v.meta.format == "gguf" and v.meta.precision == expected
    assert v.meta.files[0].sha256 == _sha(gguf_path)
    assert package.meta.lineage.foundation.startswith("headframe-test-llama-tiny")
    # the KV cache for the default context is part of the estimate
    assert v.meta.peak_memory_bytes > v.meta.bytes + 8 * 2**20


def test_add_package_dir_as_new_version(demo_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    src = demo_store / APP / "1.0.0"
    code, _, err = run("models", "add", str(src), "--store", str(store))
    assert code == 2 and "already in the store" in err
    code, _, err = run("models", "add", str(src), "--store", str(store), "--version", "1.1.0")
    assert code == 0, err
    s = Store(store)
    assert s.versions(APP) == ["1.0.0", "1.1.0"] and s.active_version(APP) == "1.1.0"
    assert len(s.load(APP, "1.1.0").variants) == 5


def test_add_rejects_bad_input_with_reasons(demo_store: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf at all" * 10)
    code, _, err = run("models", "add", str(junk), "--store", store)
    assert code == 2 and str(junk) in err and "not a valid ONNX model" in err
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    code, _, err = run("models", "add", str(text), "--store", store)
    assert code == 2 and "unknown model format '.txt'" in err
    code, _, err = run("models", "add", str(tmp_path / "missing.onnx"), "--store", store)
    assert code == 2 and "no such file" in err
    code, _, err = run("models", "add", str(junk), "--store", store, "--app", "Bad Name")
    assert code == 2 and "--app" in err
    broken = shutil.copytree(demo_store / APP / "1.0.0", tmp_path / "pkg")
    (broken / "variants" / "fp32" / "variant.toml").write_text('variant = "fp32"\n')
    code, _, err = run("models", "add", str(broken), "--store", store)
    assert code == 2 and "fp32/variant.toml" in err and "format" in err
    assert Store(Path(store)).applications() == []


def test_demo_build_uses_the_settings_store(
    demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    monkeypatch.setenv("HEADFRAME_PATHS__STORE_DIR", str(store))
    code, out, err = run("demo", "build")  # already built there: returns at once
    assert code == 0, err
    assert f"{APP} 1.0.0 in {store / APP / '1.0.0'}" in out
    assert "pruned75-int8" in out
    code, out, _ = run("models", "list", "--json")
    assert json.loads(out)[0]["application"] == APP


def test_add_onnx_with_external_data_takes_the_data_file(demo_store: Path, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(_variant_file(demo_store, "pruned75-fp32", "model.onnx")))
    src = tmp_path / "src" / "big.onnx"
    src.parent.mkdir()
    onnx.save_model(
        model, str(src), save_as_external_data=True, location="big.weights", size_threshold=0
    )
    assert src.stat().st_size < 10_000  # the weights really live in the other file
    store = tmp_path / "store"
    code, _, err = run("models", "add", str(src), "--store", str(store))
    assert code == 0, err
    v = Store(store).load("big").variant("onnx-fp32")
    assert {f.path for f in v.meta.files} == {"big.onnx", "big.weights"}
    assert v.meta.bytes == src.stat().st_size + (src.parent / "big.weights").stat().st_size
    (src.parent / "big.weights").unlink()
    code, _, err = run("models", "add", str(src), "--store", str(store), "--app", "big2")
    assert code == 2 and "external data file 'big.weights' is missing" in err


def test_add_corrupt_gguf_and_ir_are_clear_errors(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    bad_gguf = tmp_path / "bad.gguf"
    bad_gguf.write_bytes(b"GGUF" + b"\xff" * 64)
    code, _, err = run("models", "add", str(bad_gguf), "--store", store)
    assert code == 2 and f"{bad_gguf}: not a valid GGUF file" in err
    xml = tmp_path / "bad.xml"
    xml.write_text("<net><layers><layer")
    xml.with_suffix(".bin").write_bytes(b"\x00" * 16)
    code, _, err = run("models", "add", str(xml), "--store", store)
    assert code == 2 and str(xml) in err
    assert Store(Path(store)).applications() == []
