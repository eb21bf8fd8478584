"""`headframe models add DIR` on a package directory it does not own: only the files the
metadata lists are copied, links and special files are refused, sizes are capped, and the
golden file path is held inside the package."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.catalog import Store, load_package
from runtime.catalog.golden import write_npz
from runtime.errors import MetadataError
from tests.support.serving_models import write_linear_package

APP = "part-id-reader"
# A FIFO nobody writes to: reading it blocks for ever, as /dev/zero never ends. A copy
# that follows it hangs, and the timeout turns that into a failure (no disk filled).
pytestmark = pytest.mark.timeout(60)


def add(src: Path, store: Path, *extra: str) -> tuple[int, str]:
    from runtime.cli import app

    result = CliRunner().invoke(app, ["models", "add", str(src), "--store", str(store), *extra])
    return result.exit_code, result.output


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return write_linear_package(tmp_path / "src").path


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_only_the_listed_files_are_copied(package: Path, tmp_path: Path) -> None:
    listed = _tree(package)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the store")
    (package / "notes.txt").write_text("left behind")
    (package / "variants" / "small" / "scratch.onnx").write_bytes(b"\0" * 4096)
    (package / "junk").mkdir()
    (package / "junk" / "big.bin").write_bytes(b"\0" * 65536)
    os.symlink(secret, package / "variants" / "large" / "linked.txt")
    os.symlink("/etc", package / "etc")
    os.mkfifo(package / "variants" / "large" / "pipe")
    os.symlink(package / "variants" / "large" / "pipe", package / "endless")

    store = tmp_path / "store"
    code, out = add(package, store)
    assert code == 0, out
    installed = store / APP / "1.0.0"
    assert _tree(installed) == listed
    assert not any(p.is_symlink() for p in installed.rglob("*"))
    assert len(Store(store).load(APP).variants) == 2


def _variant(package: Path, name: str = "large") -> Path:
    return package / "variants" / name


def _link_to_copy(package: Path, tmp_path: Path) -> str:
    model = _variant(package) / "model.onnx"
    outside = tmp_path / "outside.onnx"
    shutil.move(model, outside)
    os.symlink(outside, model)  # same bytes, same digest: still a link
    return "is a symbolic link"


def _fifo(package: Path, tmp_path: Path) -> str:
    model = _variant(package) / "model.onnx"
    model.unlink()
    os.mkfifo(model)
    return "not a regular file"


def _linked_variant_dir(package: Path, tmp_path: Path) -> str:
    elsewhere = tmp_path / "elsewhere"
    shutil.move(_variant(package), elsewhere)
    os.symlink(elsewhere, _variant(package))
    return "is a symbolic link"


def _linked_package_toml(package: Path, tmp_path: Path) -> str:
    toml = package / "package.toml"
    shutil.move(toml, tmp_path / "package.toml")
    os.symlink(tmp_path / "package.toml", toml)
    return "is a symbolic link"


def _fifo_variant_toml(package: Path, tmp_path: Path) -> str:
    toml = _variant(package) / "variant.toml"
    toml.unlink()
    os.mkfifo(toml)
    return "not a regular file"


def _huge_variant_toml(package: Path, tmp_path: Path) -> str:
    toml = _variant(package) / "variant.toml"
    toml.write_text(toml.read_text() + "#" * (2 << 20) + "\n")
    return "not package metadata"


def _grown_model(package: Path, tmp_path: Path) -> str:
    with (_variant(package) / "model.onnx").open("ab") as f:
        f.write(b"\0" * 1_000_000)
    return "holds more than"


def _more_than_the_disk(package: Path, tmp_path: Path) -> str:
    toml = _variant(package) / "variant.toml"
    text = toml.read_text()
    size = next(ln for ln in text.splitlines() if ln.startswith("size = "))
    toml.write_text(text.replace(size, f"size = {2**60}"))
    return "bytes free"


def _listed_twice(package: Path, tmp_path: Path) -> str:
    toml = _variant(package) / "variant.toml"
    text = toml.read_text()
    entry = text[text.index("[[files]]") :]
    toml.write_text(text + "\n" + entry)
    return "is listed twice"


@pytest.mark.parametrize(
    "spoil",
    [
        _link_to_copy,
        _fifo,
        _linked_variant_dir,
        _linked_package_toml,
        _fifo_variant_toml,
        _huge_variant_toml,
        _grown_model,
        _more_than_the_disk,
        _listed_twice,
    ],
)
def test_links_special_files_and_oversize_files_are_refused(
    package: Path, tmp_path: Path, spoil: object
) -> None:
    message = spoil(package, tmp_path)  # type: ignore[operator]
    store = tmp_path / "store"
    code, out = add(package, store)
    assert code == 2, out
    assert message in out and str(package) in out, out
    assert Store(store).applications() == []
    assert not store.exists() or list(store.iterdir()) == []  # no staging left behind


@pytest.mark.parametrize("golden", ["../../secret.npz", "/etc/passwd", "sub/../../x.npz"])
def test_a_golden_path_outside_the_package_is_refused(
    package: Path, tmp_path: Path, golden: str
) -> None:
    toml = package / "package.toml"
    toml.write_text(
        toml.read_text() + f'\n[golden]\nfile = "{golden}"\nsha256 = "{"0" * 64}"\nsamples = 3\n'
    )
    with pytest.raises(MetadataError, match=r"golden\.file: .*stays inside the package"):
        load_package(package)  # the fleet installer reads packages the same way
    code, out = add(package, tmp_path / "store")
    assert code == 2 and "golden.file" in out and "package.toml" in out, out


def test_a_golden_set_inside_the_package_is_copied_and_checked(
    package: Path, tmp_path: Path
) -> None:
    import hashlib

    (package / "data").mkdir()
    write_npz(package / "data" / "golden.npz", {"features": np.zeros((3, 16), np.float32)})
    data = (package / "data" / "golden.npz").read_bytes()
    toml = package / "package.toml"
    digest = hashlib.sha256(data).hexdigest()
    base = toml.read_text()
    toml.write_text(
        base + f'\n[golden]\nfile = "data/golden.npz"\nsha256 = "{digest}"\nsamples = 3\n'
    )
    code, out = add(package, tmp_path / "store")
    assert code == 0, out
    assert (tmp_path / "store" / APP / "1.0.0" / "data" / "golden.npz").read_bytes() == data
    toml.write_text(
        base + f'\n[golden]\nfile = "data/golden.npz"\nsha256 = "{"1" * 64}"\nsamples = 3\n'
    )
    code, out = add(package, tmp_path / "store2")
    assert code == 2 and "golden.sha256" in out, out
