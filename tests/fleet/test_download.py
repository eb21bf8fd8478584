"""Resumable downloads against a real loopback server that misbehaves on purpose."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tuf.api.metadata import TargetFile

from runtime.fleet.download import Downloader
from runtime.fleet.tufclient import FleetError
from tests.support.static_server import Faults, StaticServer

SIZE = 1_000_000


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, TargetFile]:
    root = tmp_path / "srv"
    root.mkdir()
    f = root / "model.bin"
    f.write_bytes(os.urandom(SIZE))
    return root, TargetFile.from_file("model.bin", str(f), ["sha256"])


def _downloader() -> Downloader:
    return Downloader(backoff_base_s=0.01, backoff_cap_s=0.05, max_failures=6)


def test_flaky_server_download_completes_with_little_waste(
    tmp_path: Path, blob: tuple[Path, TargetFile]
) -> None:
    root, target = blob
    faults = Faults(fail_every=2, cut_after=150_000)
    with StaticServer(root, faults) as srv:
        d = _downloader()
        out = d.fetch(f"{srv.url}/model.bin", target, tmp_path / "m.partial")
        assert out.read_bytes() == (root / "model.bin").read_bytes()
        sent = srv.body_bytes("model.bin")
        ranged = [h for h in srv.log if h.status == 206]
    assert len(ranged) >= 5  # it really did resume, several times
    assert sent <= SIZE * 1.05


def test_partial_file_from_an_earlier_run_is_resumed(
    tmp_path: Path, blob: tuple[Path, TargetFile]
) -> None:
    root, target = blob
    partial = tmp_path / "m.partial"
    partial.write_bytes((root / "model.bin").read_bytes()[:400_000])
    with StaticServer(root) as srv:
        _downloader().fetch(f"{srv.url}/model.bin", target, partial)
        assert srv.log[0].range == "bytes=400000-"
        assert srv.body_bytes() == SIZE - 400_000
    assert partial.read_bytes() == (root / "model.bin").read_bytes()


def test_server_ignoring_range_restarts_from_zero(
    tmp_path: Path, blob: tuple[Path, TargetFile]
) -> None:
    root, target = blob
    partial = tmp_path / "m.partial"
    partial.write_bytes((root / "model.bin").read_bytes()[:400_000])
    with StaticServer(root, Faults(ignore_range=True)) as srv:
        d = _downloader()
        d.fetch(f"{srv.url}/model.bin", target, partial)
    assert d.stats.restarts_from_zero == 1
    assert partial.read_bytes() == (root / "model.bin").read_bytes()


def test_tampered_file_is_rejected_and_the_partial_removed(
    tmp_path: Path, blob: tuple[Path, TargetFile]
) -> None:
    root, target = blob
    data = bytearray((root / "model.bin").read_bytes())
    data[1234] ^= 0xFF
    (root / "model.bin").write_bytes(bytes(data))
    with StaticServer(root) as srv, pytest.raises(FleetError) as e:
        _downloader().fetch(f"{srv.url}/model.bin", target, tmp_path / "m.partial")
    assert "tampered" in e.value.reason
    assert not (tmp_path / "m.partial").exists()


def test_server_sending_more_than_signed_is_cut_off(
    tmp_path: Path, blob: tuple[Path, TargetFile]
) -> None:
    root, target = blob
    (root / "model.bin").write_bytes((root / "model.bin").read_bytes() + b"x" * 100_000)
    with StaticServer(root) as srv, pytest.raises(FleetError) as e:
        _downloader().fetch(f"{srv.url}/model.bin", target, tmp_path / "m.partial")
    assert "longer than signed" in e.value.reason


def test_server_that_stays_down_gives_a_reason(
    tmp_path: Path, blob: tuple[Path, TargetFile]
) -> None:
    root, target = blob
    with StaticServer(root, Faults(offline=True)) as srv, pytest.raises(FleetError) as e:
        _downloader().fetch(f"{srv.url}/model.bin", target, tmp_path / "m.partial")
    assert "HTTP 503" in e.value.reason


def test_bandwidth_cap_still_delivers_the_file(
    tmp_path: Path, blob: tuple[Path, TargetFile]
) -> None:
    root, _ = blob
    small = root / "small.bin"
    small.write_bytes(os.urandom(20_000))
    t = TargetFile.from_file("small.bin", str(small), ["sha256"])
    seen: list[int] = []
    with StaticServer(root) as srv:
        d = Downloader(bandwidth_limit_bytes_s=100_000)
        d.fetch(f"{srv.url}/small.bin", t, tmp_path / "s.partial", lambda p, n, tot: seen.append(n))
    assert seen[-1] == 20_000 and len(seen) > 1
