"""Fleet fixtures (a plugin of tests/conftest.py) and helpers: role keys, a repository
served from loopback, package makers, a simulated box's settings."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import Settings
from runtime.fleet.keys import init_keys
from tests.support.static_server import StaticServer


def write_package(
    root: Path,
    app: str,
    version: str,
    variants: dict[str, bytes],
    *,
    floor_bp: int = 0,
) -> Path:
    """A package tree with opaque variant files (for tests that never load them)."""
    pdir = root / app / version
    (pdir / "variants").mkdir(parents=True, exist_ok=True)
    (pdir / "package.toml").write_text(
        f'application = "{app}"\nversion = "{version}"\ntask = "tensor"\n'
        f"accuracy_floor_bp = {floor_bp}\n"
        '[lineage]\nfoundation = "f"\nsector = "s"\napplication = "a"\n'
    )
    for vid, data in variants.items():
        vdir = pdir / "variants" / vid
        vdir.mkdir(parents=True, exist_ok=True)
        (vdir / "model.onnx").write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        (vdir / "variant.toml").write_text(
            f'variant = "{vid}"\nformat = "onnx"\nprecision = "fp32"\n'
            f'entrypoint = "model.onnx"\nbytes = {len(data)}\npeak_memory_bytes = {len(data)}\n'
            f'[[files]]\npath = "model.onnx"\nsha256 = "{sha}"\nsize = {len(data)}\n'
        )
    return pdir


@pytest.fixture(scope="session")
def fleet_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = tmp_path_factory.mktemp("keys")
    init_keys(keys)
    return keys


@pytest.fixture
def keys_dir(fleet_keys: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "keys"
    shutil.copytree(fleet_keys, dest)
    return dest


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def server(repo_dir: Path) -> Iterator[StaticServer]:
    repo_dir.mkdir(parents=True, exist_ok=True)
    with StaticServer(repo_dir) as s:
        yield s


DEMO_APP = "part-id-reader"


def make_version(src: Path, dest_root: Path, version: str, *, spoil: bool = False) -> Path:
    """A copy of the demo package ``src`` as ``version``. ``spoil``: every ONNX variant
    gets its weights shuffled (it still loads, but the golden-set accuracy collapses)
    and the OpenVINO variant is dropped."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from runtime.catalog import load_package, read_package_meta
    from runtime.catalog.writer import variant_files, write_package_meta, write_variant_meta

    dest = dest_root / DEMO_APP / version
    shutil.copytree(src, dest)
    meta = read_package_meta(dest / "package.toml")
    write_package_meta(meta.model_copy(update={"version": version}), dest)
    if spoil:
        rng = np.random.default_rng(7)
        for v in load_package(dest).variants:
            if v.meta.format != "onnx":
                shutil.rmtree(v.path)
                continue
            model = onnx.load(str(v.entrypoint))
            for init in model.graph.initializer:
                arr = numpy_helper.to_array(init)
                if arr.size > 16:
                    shuffled = rng.permutation(arr.reshape(-1)).reshape(arr.shape)
                    init.CopyFrom(numpy_helper.from_array(shuffled.astype(arr.dtype), init.name))
            onnx.save(model, str(v.entrypoint))
            files, total = variant_files(v.path)
            write_variant_meta(v.meta.model_copy(update={"files": files, "bytes": total}), v.path)
    return dest


def write_box_config(
    path: Path, *, state: Path, url: str | None, trusted_root: Path, **fleet: object
) -> Path:
    """A settings file for a simulated box (used in-process and by subprocesses)."""
    lines = [
        "demo = false",
        "[paths]",
        f'state_dir = "{state}"',
        f'store_dir = "{state / "store"}"',
        # The repo's profiles, never whatever another test may have put in /usr/share.
        f'profiles_dir = "{Path(__file__).resolve().parents[2] / "device_profiles"}"',
        "[fleet]",
        f'trusted_root = "{trusted_root}"',
        'node_id = "box-1"',
    ]
    if url:
        lines.append(f'url = "{url}"')
    for k, v in fleet.items():
        lines.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def reshuffle_golden(package_dir: Path, seed: int = 1) -> None:
    """New golden-set bytes (same samples, another order), so a version has a file the
    box does not hold yet: something real to download."""
    import numpy as np

    from runtime.catalog import read_package_meta
    from runtime.catalog.writer import write_package_meta
    from runtime.files import sha256_file

    path = package_dir / "golden.npz"
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    order = np.random.default_rng(seed).permutation(len(data["labels"]))
    np.savez(path, **{k: v[order] for k, v in data.items()})
    meta = read_package_meta(package_dir / "package.toml")
    assert meta.golden is not None
    golden = meta.golden.model_copy(update={"sha256": sha256_file(path)})
    write_package_meta(meta.model_copy(update={"golden": golden}), package_dir)


def fleet_in_process(settings: Settings, **service_options: Any) -> tuple[Any, Any]:
    """The daemon's fleet parts, on the running loop: the service, and the runner whose
    agent activates through a change path over the loader's own box (as in the daemon)."""
    from runtime.fleet.runner import FleetRunner, hot_swap
    from runtime.fleet.wiring import box_chooser_and_loader, build_agent
    from runtime.service import InferenceService
    from runtime.service.changes import ChangePath

    chooser, loader, picker = box_chooser_and_loader(settings)
    service = InferenceService(loader, **service_options)
    box = loader.box  # type: ignore[attr-defined]
    changes = ChangePath(service, lambda: box)
    agent = build_agent(
        settings, chooser=chooser, loader=loader, picker=picker, on_activated=hot_swap(changes)
    )
    return service, FleetRunner(agent, changes, reconcile_s=0.2)
