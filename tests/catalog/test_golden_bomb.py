"""A golden file's declared sizes are checked before anything is inflated (issue 25, item
5): ``models add DIR`` accepted a 1 MB golden.npz that inflates to 1 GiB, and every box
that measured or trialled the package would have read all of it. Also an array header
that claims more than its member holds (numpy allocates what the header says first)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.catalog.golden import MAX_GOLDEN_ARRAY_BYTES, load_arrays, write_npz
from runtime.errors import BuildInputError
from tests.support.serving_models import write_linear_package

GIB = 1 << 30


def _npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def gib_bomb(path: Path) -> Path:
    """1 GiB of float32 zeros, deflated to about a megabyte."""
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("pixels.npy", "w", force_zip64=True) as f,
    ):
        f.write(_npy_header((GIB // 4,)))
        chunk = bytes(1 << 20)
        for _ in range(GIB >> 20):
            f.write(chunk)
    return path


def lying_header(path: Path) -> Path:
    """A member of a few bytes whose header claims a terabyte."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pixels.npy", _npy_header((1 << 38,)) + bytes(16))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gib_bomb(tmp_path_factory.mktemp("bomb") / "golden.npz")


def test_a_gigabyte_bomb_is_refused_from_its_declared_sizes(bomb: Path) -> None:
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(BuildInputError, match=f"more than {MAX_GOLDEN_ARRAY_BYTES} bytes"):
        load_arrays(bomb)


def test_a_header_that_claims_more_than_its_member_holds_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildInputError, match="claims 1099511627776 bytes of data but holds"):
        load_arrays(lying_header(tmp_path / "golden.npz"))


def test_an_honest_golden_set_still_loads(tmp_path: Path) -> None:
    arrays = {"pixels": np.arange(12, dtype=np.float32).reshape(3, 4), "labels": np.arange(3)}
    got = load_arrays(write_npz(tmp_path / "golden.npz", arrays))
    assert set(got) == {"pixels", "labels"} and got["pixels"].shape == (3, 4)


def test_models_add_refuses_a_package_whose_golden_file_is_a_bomb(
    bomb: Path, tmp_path: Path
) -> None:
    from runtime.cli import app

    package = write_linear_package(tmp_path / "src").path
    (package / "golden.npz").write_bytes(bomb.read_bytes())
    digest = hashlib.sha256(bomb.read_bytes()).hexdigest()
    toml = package / "package.toml"
    toml.write_text(
        toml.read_text() + f'\n[golden]\nfile = "golden.npz"\nsha256 = "{digest}"\nsamples = 3\n'
    )
    result = CliRunner().invoke(
        app, ["models", "add", str(package), "--store", str(tmp_path / "store")]
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "golden" in lines[0] and "the limit for a golden set" in lines[0]
    assert not (tmp_path / "store" / "part-id-reader").exists()
