"""Package files: written TOML reads back, and every bad file is named with its field."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime.catalog import (
    FileEntry,
    Lineage,
    PackageMeta,
    Store,
    TensorSpec,
    VariantMeta,
    json_schema,
    load_package,
    read_package_meta,
    read_variant_meta,
    required_schema_version,
)
from runtime.catalog.writer import (
    dumps_toml,
    install_package,
    staging_dir,
    verify_package,
    write_package_meta,
    write_variant_meta,
)
from runtime.errors import MetadataError

REPO = Path(__file__).resolve().parents[2]


def _package_meta(**kw: object) -> PackageMeta:
    base: dict[str, object] = {
        "application": "belt-anomaly",
        "version": "2.1.0",
        "task": "tensor",
        "description": 'Says "stop" when\nthe belt\ttears \\ slips',
        "lineage": Lineage(foundation="f", sector="mining", application="belt-anomaly"),
        "accuracy_floor_bp": 9100,
        "inputs": [TensorSpec(name="x", datatype="FP32", shape=(-1, 3, 8))],
        "outputs": [TensorSpec(name="y", datatype="INT64", shape=(-1,))],
    }
    base.update(kw)
    return PackageMeta.model_validate(base)


def _variant_meta(**kw: object) -> VariantMeta:
    base: dict[str, object] = {
        "variant": "int8",
        "format": "onnx",
        "precision": "int8",
        "pruning_bp": 5000,
        "entrypoint": "m.onnx",
        "files": [FileEntry(path="m.onnx", sha256="0" * 64, size=3)],
        "bytes": 3,
        "peak_memory_bytes": 1000,
        "device_classes": ("cpu", "npu"),
        "accuracy_bp": 9300,
    }
    base.update(kw)
    return VariantMeta.model_validate(base)


def test_written_metadata_reads_back_equal(tmp_path: Path) -> None:
    pmeta, vmeta = _package_meta(), _variant_meta()
    assert read_package_meta(write_package_meta(pmeta, tmp_path)) == pmeta
    assert read_variant_meta(write_variant_meta(vmeta, tmp_path / "v")) == vmeta


def test_none_values_are_left_out() -> None:
    text = dumps_toml(_variant_meta(latency_us=None).model_dump(mode="json", exclude_none=True))
    assert "latency_us" not in text and "accuracy_bp = 9300" in text


def _write_bad(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace("bytes = 3", "bytes = -1"), "bytes"),
        (lambda t: t.replace('format = "onnx"', 'format = "tflite"'), "format"),
        (lambda t: t.replace('precision = "int8"\n', ""), "precision"),
        (lambda t: t + "colour = 1\n", "colour"),
        (lambda t: t.replace('path = "m.onnx"', 'path = "../../etc/passwd"'), "files.0.path"),
        (lambda t: t.replace("accuracy_bp = 9300", "accuracy_bp = 12000"), "accuracy_bp"),
    ],
)
def test_bad_variant_file_names_file_and_field(
    tmp_path: Path, edit: Callable[[str], str], field: str
) -> None:
    good = dumps_toml(_variant_meta().model_dump(mode="json", exclude_none=True))
    bad = _write_bad(tmp_path / "variant.toml", edit(good))
    with pytest.raises(MetadataError) as err:
        read_variant_meta(bad)
    assert str(bad) in err.value.message
    assert field in err.value.message


def test_bad_package_file_names_file_and_field(tmp_path: Path) -> None:
    good = dumps_toml(_package_meta().model_dump(mode="json", exclude_none=True))
    bad = _write_bad(tmp_path / "package.toml", good.replace("belt-anomaly", "Belt Anomaly", 1))
    with pytest.raises(MetadataError, match=r"package\.toml: application: String should match"):
        read_package_meta(bad)
    _write_bad(bad, good.replace('datatype = "FP32"', 'datatype = "FLOAT"'))
    with pytest.raises(MetadataError, match=r"inputs\.0\.datatype"):
        read_package_meta(bad)
    _write_bad(bad, "application = [unclosed\n")
    with pytest.raises(MetadataError, match=r"package\.toml: not valid TOML"):
        read_package_meta(bad)


def test_corrupted_file_fails_the_digest_check(demo_store: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(demo_store / "part-id-reader" / "1.0.0", tmp_path / "pkg")
    model = copy / "variants" / "pruned75-fp32" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes
    model.write_bytes(bytes(data))
    with pytest.raises(MetadataError) as err:
        verify_package(load_package(copy))
    assert "pruned75-fp32/variant.toml" in err.value.message
    assert "files.0.sha256" in err.value.message


def test_install_is_all_or_nothing(demo_store: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    src = demo_store / "part-id-reader" / "1.0.0"
    with staging_dir(store) as staged:
        shutil.rmtree(staged)
        shutil.copytree(src, staged)
        (staged / "golden.npz").write_bytes(b"not the golden set")
        with pytest.raises(MetadataError, match=r"golden\.sha256"):
            install_package(staged, store)
    assert store.applications() == []  # nothing half-installed, no staging dir left
    assert [p.name for p in store.root.iterdir()] == []
    with staging_dir(store) as staged:
        shutil.rmtree(staged)
        shutil.copytree(src, staged)
        installed = install_package(staged, store)
    assert installed.path == store.package_dir("part-id-reader", "1.0.0")
    assert store.applications() == ["part-id-reader"]
    with staging_dir(store) as staged:
        shutil.rmtree(staged)
        shutil.copytree(src, staged)
        with pytest.raises(MetadataError, match="already in the store"):
            install_package(staged, store)
        install_package(staged, store, replace=True)
    assert [p.name for p in (store.root / "part-id-reader").iterdir()] == ["1.0.0"]


def test_published_json_schema_is_current() -> None:
    published = json.loads((REPO / "docs" / "model-package.schema.json").read_text())
    assert published == json_schema(), "regenerate: python -m runtime.catalog.writer --schema"


def test_writer_emits_the_oldest_schema_that_holds_the_package(tmp_path: Path) -> None:
    # A box deployed before schema 2 reads only schema 1: a package that uses no newer
    # field must keep saying 1, even when the in-memory metadata says 2.
    path = write_package_meta(_package_meta(schema_version=2), tmp_path)
    assert "schema_version = 1\n" in path.read_text()
    assert read_package_meta(path).schema_version == 1


def test_a_schema_newer_than_this_box_reads_is_refused(tmp_path: Path) -> None:
    path = write_package_meta(_package_meta(), tmp_path)
    path.write_text(path.read_text().replace("schema_version = 1", "schema_version = 9"))
    with pytest.raises(
        MetadataError, match=r"package\.toml: schema_version: .*less than or equal to 2"
    ):
        read_package_meta(path)


@pytest.mark.parametrize(
    "fields",
    [{"task": "embedding"}, {"task": "text", "embedding_truncation": True}],
    ids=["embedding-task", "truncation-field"],
)
def test_embedding_packages_need_schema_2(tmp_path: Path, fields: dict[str, object]) -> None:
    # A schema-1 box would refuse task "embedding": the writer must say 2, and a file
    # that claims 1 is refused naming what needs 2.
    meta = _package_meta(schema_version=2, **fields)
    assert required_schema_version(meta) == 2
    path = write_package_meta(meta, tmp_path)
    assert "schema_version = 2\n" in path.read_text()
    assert read_package_meta(path).task == fields["task"]
    path.write_text(path.read_text().replace("schema_version = 2", "schema_version = 1"))
    what = "embedding" if fields["task"] == "embedding" else "embedding_truncation"
    with pytest.raises(MetadataError, match=f"{what}.*need schema_version = 2"):
        read_package_meta(path)
