"""Offline bundle import against crafted tars: nothing is ever extracted, so no link or
name in a bundle can write anywhere, and every refusal names the member and why."""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app as cli_app
from runtime.fleet.bundle import export_bundle
from runtime.fleet.publish import publish
from tests.support.fleet_repo import write_box_config, write_package

Craft = Callable[[tarfile.TarFile, Path], None]


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"pwned") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


def _path_max_chain(tar: tarfile.TarFile, outside: Path) -> None:
    """The CVE-2025-4517 trick: symlinks through directories with long names push the
    real path past PATH_MAX, where os.path.realpath (and so tarfile's "data" filter on
    Pythons without the fix, 3.11.7 included) stops resolving, and an "escape" link then
    lets a file land in ``outside``."""
    comp, steps, path = "d" * 247, "abcdefghijklmnop", ""
    for step in steps:
        info = tarfile.TarInfo(os.path.join(path, comp))
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        _link(tar, os.path.join(path, step), comp)
        path = os.path.join(path, comp)
    long_link = os.path.join(*steps, "l" * 254)
    _link(tar, long_link, "../" * len(steps))
    # Aimed from where an extracting importer unpacked: a directory in the temp dir.
    extracted_in = Path(tempfile.gettempdir()) / "headframe-bundle-x"
    _link(tar, "escape", f"{long_link}/{os.path.relpath(outside, extracted_in)}")
    _file(tar, "escape/pwned")


def _declared_huge(tar: tarfile.TarFile, outside: Path) -> None:
    # A header that claims 1 TiB; the cap must refuse it from the header alone.
    info = tarfile.TarInfo("targets/belt/1.0.0/huge.bin")
    info.size = 1024**4
    assert tar.fileobj is not None
    tar.fileobj.write(info.tobuf(tar.format, tar.encoding, tar.errors))
    tar.offset += tarfile.BLOCKSIZE


CASES: dict[str, tuple[Craft, str, str]] = {
    # case: (what is appended to a real bundle, the member named, why)
    "symlink": (
        lambda t, o: _link(t, "targets/belt/evil", str(o)),
        "targets/belt/evil",
        "symbolic link",
    ),
    "hardlink": (
        lambda t, o: _link(t, "targets/belt/hard", "/etc/passwd", tarfile.LNKTYPE),
        "targets/belt/hard",
        "hard link",
    ),
    "dotdot": (
        lambda t, o: _file(t, "targets/../../outside/pwned"),
        "targets/../../outside/pwned",
        "points outside",
    ),
    "absolute": (lambda t, o: _file(t, str(o / "pwned")), "outside/pwned", "points outside"),
    "path-max-chain": (_path_max_chain, "'a'", "symbolic link"),
    "device": (
        lambda t, o: _link(t, "targets/belt/dev", "", tarfile.CHRTYPE),
        "targets/belt/dev",
        "character device",
    ),
    "unexpected": (lambda t, o: _file(t, "install.sh"), "install.sh", "not a file a bundle holds"),
    "duplicate": (
        lambda t, o: _file(t, "metadata/timestamp.json"),
        "metadata/timestamp.json",
        "appears twice",
    ),
    "oversize": (_declared_huge, "targets/belt/1.0.0/huge.bin", "bytes allowed"),
}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_crafted_bundle_is_refused_and_nothing_is_written(
    case: str, tmp_path: Path, keys_dir: Path, repo_dir: Path
) -> None:
    write_package(tmp_path / "pkgs", "belt", "1.0.0", {"fp32": b"x" * 100})
    publish(repo_dir, keys_dir, [tmp_path / "pkgs" / "belt" / "1.0.0"])
    real = tmp_path / "real.tar"
    export_bundle(repo_dir, real, keys_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    crafted = tmp_path / "crafted.tar"
    craft, member, why = CASES[case]
    with tarfile.open(real) as src, tarfile.open(crafted, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in src.getmembers():
            tar.addfile(m, src.extractfile(m))
        craft(tar, outside)
    cfg = write_box_config(
        tmp_path / "box.toml", state=tmp_path / "box", url=None,
        trusted_root=repo_dir / "metadata" / "1.root.json",
    )  # fmt: skip
    before = _tree(tmp_path)
    r = CliRunner().invoke(cli_app, ["bundle", "import", str(crafted), "--config", str(cfg)])
    assert r.exit_code == 2, r.output
    assert "refusing the bundle" in r.output and why in r.output, r.output
    assert member in r.output, r.output
    assert not list(outside.iterdir())
    assert _tree(tmp_path) == before  # not a byte written anywhere, nor a directory made


def test_a_real_bundle_with_directory_entries_is_read_in_place(
    tmp_path: Path, keys_dir: Path, repo_dir: Path
) -> None:
    """What `tar -C repo -cf site.tar metadata targets` makes by hand: directory
    entries and all. Checked like any bundle, then read member by member."""
    from runtime.fleet.bundle import Bundle

    write_package(tmp_path / "pkgs", "belt", "1.0.0", {"fp32": b"x" * 100})
    publish(repo_dir, keys_dir, [tmp_path / "pkgs" / "belt" / "1.0.0"])
    export_bundle(repo_dir, tmp_path / "real.tar", keys_dir)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(tmp_path / "real.tar") as tar:
        tar.extractall(unpacked, filter="data")  # the test's own, trusted, bundle
    by_hand = tmp_path / "by-hand.tar"
    with tarfile.open(by_hand, "w") as tar:
        tar.add(unpacked / "metadata", arcname="metadata")
        tar.add(unpacked / "targets", arcname="targets")
    with Bundle(by_hand) as b:
        assert (
            b.open(f"{b.url}metadata/timestamp.json").read()
            == (unpacked / "metadata" / "timestamp.json").read_bytes()
        )
        assert all(m.isreg() for m in b.members.values())
