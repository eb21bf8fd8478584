"""The demo reads pictures: its package carries the contract and labels, and the rendered
held-out digits (PNG and JPEG, noise and scale) classify above the package's own floor."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.cli import app as cli
from runtime.demo import build_demo_catalog
from runtime.demo.pictures import LABELS, encode, rendered_split
from runtime.images.preprocess import picture_to_tensor

APP = "part-id-reader"


def _session(store: Path) -> tuple[ort.InferenceSession, Store]:
    package = Store(store).load(APP)
    path = package.variant("fp32").entrypoint
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), Store(store)


def test_the_demo_package_declares_pictures_and_labels(demo_store: Path) -> None:
    package = Store(demo_store).load(APP)
    assert package.meta.images is not None and package.meta.labels is not None
    contract = package.meta.images["pixels"]
    assert (contract.width, contract.height, contract.color, contract.flatten) == (
        8,
        8,
        "GRAY",
        True,
    )
    assert package.meta.labels["probabilities"] == LABELS
    assert "schema_version = 2\n" in (package.path / "package.toml").read_text()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_rendered_digits_classify_above_the_floor(demo_store: Path, fmt: str) -> None:
    session, store = _session(demo_store)
    package = store.load(APP)
    contract = package.meta.images["pixels"]  # type: ignore[index]
    pictures, labels = rendered_split(0)
    tensors = np.stack([picture_to_tensor(encode(p, fmt), contract) for p in pictures])
    probs = session.run(["probabilities"], {"pixels": tensors})[0]
    accuracy_bp = round(10_000 * float(np.mean(probs.argmax(axis=1) == labels)))
    assert accuracy_bp >= package.meta.accuracy_floor_bp
    # The same digits as tensors score what the package measured; pictures lose little.
    fp32_bp = package.variant("fp32").meta.accuracy_bp
    assert fp32_bp is not None and accuracy_bp >= fp32_bp - 300


def test_demo_pictures_command_writes_what_the_readme_sends(
    demo_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pictures"
    result = CliRunner().invoke(cli, ["demo", "pictures", str(out)])
    assert result.exit_code == 0, result.output
    assert "21 pictures" in result.output
    assert (out / "digit.png").read_bytes() == (out / "digit-7.png").read_bytes()
    session, store = _session(demo_store)
    contract = store.load(APP).meta.images["pixels"]  # type: ignore[index]
    files = sorted(out.glob("digit-*.*"))
    assert len(files) == 20
    tensors = np.stack([picture_to_tensor(f.read_bytes(), contract) for f in files])
    predicted = session.run(["probabilities"], {"pixels": tensors})[0].argmax(axis=1)
    truth = [int(f.stem.split("-")[1]) for f in files]
    assert np.mean(predicted == truth) >= 0.9


def test_demo_pictures_into_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["demo", "pictures", str(blocker / "sub")])
    assert result.exit_code == 1
    assert "cannot write the pictures" in result.output


@pytest.mark.slow
def test_a_demo_without_the_contract_is_rebuilt(demo_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    toml = store / APP / "1.0.0" / "package.toml"
    text = toml.read_text()
    toml.write_text(
        text.replace("schema_version = 2", "schema_version = 1").split("\n[images")[0] + "\n"
    )
    assert Store(store).load(APP).meta.images is None  # an older demo, still valid
    (package,) = build_demo_catalog(store)
    assert package.meta.images is not None
