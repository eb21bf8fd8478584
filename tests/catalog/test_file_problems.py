"""One check of a variant's files against variant.toml (catalog.package.file_problems),
whoever asks: ``models list``/``models select`` (stat only), the package writer and the
loader (sha256 too). A bad file is described in the same words by all three."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.catalog import Variant
from runtime.catalog.writer import verify_variant_files
from runtime.config import Settings
from runtime.errors import MetadataError
from runtime.loading.targets import FileCheckError, TargetLoader
from tests.support.box import box_for
from tests.support.onnx_models import VariantSpec, write_package
from tests.support.synthetic import local_report, make_profile


@pytest.fixture
def variant(tmp_path: Path) -> Variant:
    return write_package(tmp_path / "store", [VariantSpec("small", hidden=8)]).variants[0]


def _writer_says(v: Variant) -> str:
    with pytest.raises(MetadataError) as err:
        verify_variant_files(v.path, v.meta)
    return err.value.message


def _loader_says(v: Variant, tmp_path: Path) -> str:
    settings = Settings(paths={"state_dir": tmp_path / "state", "cache_dir": tmp_path / "cache"})
    loader = TargetLoader(box_for(settings, local_report(), make_profile()))
    with pytest.raises(FileCheckError) as err:
        loader.verify_files(v)
    return err.value.message


def test_a_truncated_file(variant: Variant, tmp_path: Path) -> None:
    size = variant.entrypoint.stat().st_size
    variant.entrypoint.write_bytes(b"x" * 100)
    said = f"model.onnx is 100 bytes, variant.toml says {size}"
    assert variant.file_problems() == [said]
    assert _writer_says(variant) == f"{variant.path / 'variant.toml'}: files.0.size: {said}"
    assert _loader_says(variant, tmp_path) == (
        f"{variant.path}: {said}: the file is truncated, corrupted or was replaced"
    )


def test_a_missing_file(variant: Variant, tmp_path: Path) -> None:
    variant.entrypoint.unlink()
    assert variant.file_problems() == ["model.onnx is missing"]
    assert _writer_says(variant).endswith("files.0.path: model.onnx is missing")
    assert _loader_says(variant, tmp_path) == f"{variant.path}: model.onnx is missing"


def test_a_changed_byte_only_the_digest_sees(variant: Variant, tmp_path: Path) -> None:
    data = bytearray(variant.entrypoint.read_bytes())
    data[len(data) // 2] ^= 0xFF
    variant.entrypoint.write_bytes(bytes(data))
    assert variant.file_problems() == []  # stat only: the size is right
    writer, loader = _writer_says(variant), _loader_says(variant, tmp_path)
    assert "files.0.sha256: model.onnx: sha256 " in writer
    assert "does not match variant.toml" in writer and "does not match variant.toml" in loader
    assert loader.endswith("the file is corrupted or was replaced")


def test_a_directory_where_a_file_should_be(variant: Variant) -> None:
    variant.entrypoint.unlink()
    variant.entrypoint.mkdir()
    assert variant.file_problems() == ["model.onnx is not a regular file"]
    assert _writer_says(variant).endswith("files.0.path: model.onnx is not a regular file")
