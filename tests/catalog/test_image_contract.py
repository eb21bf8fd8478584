"""The image contract in package.toml: schema 2, checked against the model's input when
the package is read and again when a real variant is loaded; a mismatch names the field."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.catalog import load_package, read_package_meta
from runtime.catalog.writer import write_package_meta
from runtime.errors import MetadataError
from runtime.service import InferenceService
from tests.support.image_models import (
    CAMERA,
    camera_contract_toml,
    write_camera_package,
    write_picture_package,
)
from tests.support.loaders import ort_loader
from tests.support.serving_models import write_linear_package


def test_contract_and_labels_read_back_and_write_schema_2(tmp_path: Path) -> None:
    package = write_picture_package(tmp_path / "store")
    contract = package.meta.images["pixels"]  # type: ignore[index]
    assert (contract.width, contract.height, contract.color, contract.flatten) == (
        8,
        8,
        "GRAY",
        True,
    )
    assert package.meta.labels["probabilities"][3] == "three"  # type: ignore[index]
    out = tmp_path / "copy"
    write_package_meta(package.meta, out)
    text = (out / "package.toml").read_text()
    assert "schema_version = 2\n" in text and "[images.pixels]" in text
    again = read_package_meta(out / "package.toml")
    assert again.images == package.meta.images and again.labels == package.meta.labels


def test_a_package_without_pictures_stays_schema_1(tmp_path: Path) -> None:
    package = write_linear_package(tmp_path / "store")
    write_package_meta(package.meta, tmp_path / "copy")
    assert "schema_version = 1\n" in (tmp_path / "copy" / "package.toml").read_text()


def test_schema_1_cannot_carry_a_contract(tmp_path: Path) -> None:
    pdir = write_picture_package(tmp_path / "store").path
    toml = pdir / "package.toml"
    toml.write_text(toml.read_text().replace("schema_version = 2", "schema_version = 1"))
    with pytest.raises(MetadataError, match=r"images, labels need schema_version = 2"):
        load_package(pdir)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("width = 8", "width = 9",
         "images.pixels.width x height x channels: gives 72, but input 'pixels' has 64"),
        ("flatten = true", "flatten = false",
         r"images.pixels: makes 4-D tensors \(NHWC\), but input 'pixels' is 2-D.*flatten = true"),
        ('color = "GRAY"', 'color = "RGB"', "gives 192, but input 'pixels' has 64"),
        ("[images.pixels]", "[images.image]", "images.image: the package has no input 'image'"),
        ("std = [1.0]", "std = [0.0]", "std values are non-zero"),
        ("mean = [-16.0]", "mean = [1.0, 2.0]", "mean has 2 values; GRAY takes 1 or 1"),
        ("flatten = true", "flatten = true\ngamma = 2.2", "images.pixels.gamma: Extra inputs"),
        ('"nine"]', '"nine", "ten"]',
         "labels.probabilities: 11 names, but output 'probabilities' has 10"),
    ],
    ids=["width", "flatten", "color", "name", "std", "mean", "unknown-key", "labels"],
)  # fmt: skip
def test_mismatch_at_read_names_the_field(tmp_path: Path, old: str, new: str, words: str) -> None:
    pdir = write_picture_package(tmp_path / "store").path
    toml = pdir / "package.toml"
    toml.write_text(toml.read_text().replace(old, new))
    with pytest.raises(MetadataError, match=words) as caught:
        load_package(pdir)
    assert str(toml) in caught.value.message


def _add(package_dir: Path) -> InferenceService:
    async def go() -> InferenceService:
        service = InferenceService(ort_loader)
        try:
            await service.add(load_package(package_dir))
        finally:
            await service.close()
        return service

    return asyncio.run(go())


def test_mismatch_with_the_loaded_model_is_a_load_error(tmp_path: Path) -> None:
    # package.toml says [-1, 3, 4, 6] any width; the ONNX graph really takes width 6.
    wide = CAMERA.model_copy(update={"width": 8})
    package = write_camera_package(
        tmp_path / "store", contract_toml=camera_contract_toml(wide), shape="[-1, 3, 4, -1]"
    )
    words = r"images.image.width: gives 8, but input 'image' has 6 there \(\[-1, 3, 4, 6\], NCHW\)"
    with pytest.raises(MetadataError, match=words):
        _add(package.path)


def test_matching_contract_loads(tmp_path: Path) -> None:
    package = write_camera_package(tmp_path / "store", shape="[-1, 3, 4, -1]")
    _add(package.path)  # no error
