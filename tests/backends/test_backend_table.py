"""A backend is one file plus one table row.

``echo`` below is a whole backend: this module plays its file (the ``EchoBackend`` class
and its pure ``device_problem``) and ``ROW`` is its one row for runtime/backend_table.py.
With the row put into the table for the test (the table is the seam, as in
tests/support/sleepy_backend.py; nothing of ours is mocked), every room that needs a fact
about a backend finds it there: device profiles accept its targets, the catalog its
format and memory estimate, the probe its runtime, selection its device rule, the
registry its class, and KServe's model metadata its platform name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from runtime.backend_table import BACKENDS, BackendRow, estimate_peak_memory, formats
from runtime.backends.base import (
    BackendInfo,
    GenerationChunk,
    GenerationRequest,
    IOSchema,
    LoadOptions,
)
from runtime.backends.registry import create_backend
from runtime.catalog import ModelPackage, Store, TensorSpec, Variant, VariantMeta, load_package
from runtime.catalog.writer import (
    install_package,
    staging_dir,
    variant_files,
    write_package_meta,
    write_variant_meta,
)
from runtime.config import Settings
from runtime.errors import ConfigError, MetadataError
from runtime.hardware.report import HardwareReport, RuntimeInfo
from runtime.hardware.runtimes import probe_runtime_live, runtime_presence
from runtime.profiles import DeviceProfile, Target, load_profile
from runtime.selection import Policy, resources_for, select
from tests.support.http_server import serving
from tests.support.synthetic import make_package_meta, make_report, make_variant, nvidia_gpu

# The echo backend's runtime: any importable package will do; a small stdlib one.
RUNTIME = "colorsys"

ROW = BackendRow(
    name="echo",
    module=__name__,
    cls="EchoBackend",
    runtime=RUNTIME,
    distributions=(),
    extra="echo",
    platform="echo_doubler",
    formats=("echo",),
    device_classes=("cpu", "gpu"),
    bare_file_devices=("cpu",),
    base_bytes=1000,
    weight_copies=2,
    offers=lambda module: ("0.1", ("cpu",), "no GPU in this build"),
)


def device_problem(target: Target, variant: VariantMeta, report: HardwareReport) -> str | None:
    """The echo runtime drives a GPU only where its probe listed one."""
    info = report.runtime(RUNTIME)
    if target.device.startswith("gpu") and "gpu" not in (info.devices if info else ()):
        return "echo was built without a GPU"
    return None


class EchoBackend:
    """Doubles its one input; its 'model file' holds nothing it needs."""

    name = "echo"
    thread_safe = True

    def load(self, variant: Variant, options: LoadOptions) -> None:
        assert variant.entrypoint.read_bytes() == b"echo"
        self._device = options.device

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"] * 2}

    def generate(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        raise NotImplementedError

    def describe(self) -> IOSchema:
        return IOSchema(
            inputs=(TensorSpec(name="x", datatype="FP32", shape=(-1, 2)),),
            outputs=(TensorSpec(name="y", datatype="FP32", shape=(-1, 2)),),
        )

    def info(self) -> BackendInfo:
        return BackendInfo(backend=self.name, device=self._device)

    def unload(self) -> None:
        pass


@pytest.fixture
def echo_row(monkeypatch: pytest.MonkeyPatch) -> BackendRow:
    monkeypatch.setitem(BACKENDS, ROW.name, ROW)
    return ROW


def _profile(*targets: dict[str, Any]) -> DeviceProfile:
    return DeviceProfile.model_validate(
        {
            "name": "echo-box",
            "description": "test",
            "priority": 1,
            "targets": list(targets),
            "precisions": ["fp32"],
            "formats": ["echo"],
        }
    )


def _echo_variant() -> VariantMeta:
    fields = make_variant("e", 100, device_classes=("cpu", "gpu")).model_dump()
    return VariantMeta.model_validate({**fields, "format": "echo"})


def _echo_report() -> HardwareReport:
    return make_report(
        runtimes=[RuntimeInfo(RUNTIME, True, "0.1", ("cpu",))], accelerators=[nvidia_gpu()]
    )


def test_without_its_row_nothing_knows_the_backend() -> None:
    assert "echo" not in formats()
    with pytest.raises(ValueError, match="unknown backend 'echo'"):
        _profile({"backend": "echo", "device": "cpu"})
    with pytest.raises(ValueError, match="unknown format 'echo'; known: onnx, openvino, gguf"):
        _echo_variant()


def test_profiles_and_the_catalog_read_the_row(echo_row: BackendRow) -> None:
    profile = _profile({"backend": "echo", "device": "gpu"}, {"backend": "echo", "device": "cpu"})
    assert [t.backend for t in profile.targets] == ["echo", "echo"]
    with pytest.raises(ValueError, match="the echo backend runs on cpu or gpu, not npu"):
        _profile({"backend": "echo", "device": "npu"})
    with pytest.raises(ValueError, match="providers are execution providers"):
        _profile({"backend": "echo", "device": "cpu", "providers": ["CPUExecutionProvider"]})
    assert _echo_variant().format == "echo"
    assert estimate_peak_memory("echo", 100, 7) == 1000 + 2 * 100 + 7


def test_the_probe_reads_the_row(echo_row: BackendRow) -> None:
    live = probe_runtime_live(RUNTIME)
    assert (live.available, live.version, live.devices, live.reason) == (
        True,
        "0.1",
        ("cpu",),
        "no GPU in this build",
    )
    presence = runtime_presence(RUNTIME)
    assert presence.available and not presence.queried


def test_selection_reads_the_row_and_asks_the_backends_own_device_rule(
    echo_row: BackendRow,
) -> None:
    profile = _profile({"backend": "echo", "device": "gpu"}, {"backend": "echo", "device": "cpu"})
    report = _echo_report()
    variant = _echo_variant()
    chosen = select(
        make_package_meta(floor_bp=0),
        [variant],
        profile,
        report,
        resources_for(profile, report),
        Policy(),
    ).chosen
    assert chosen is not None and (chosen.backend, chosen.device) == ("echo", "cpu")
    assert "skipped echo/gpu: echo was built without a GPU" in chosen.reason
    # the runtime missing: the row's install hint says which extra
    bare = make_report(runtimes=[])
    nothing = select(
        make_package_meta(floor_bp=0), [variant], profile, bare, resources_for(profile, bare)
    )
    assert nothing.chosen is None
    assert "colorsys is not installed (pip install 'headframe[echo]')" in nothing.rejected[0].reason


def _echo_package(store: Store) -> ModelPackage:
    with staging_dir(store) as staged:
        vdir = staged / "variants" / "echo-fp32"
        vdir.mkdir(parents=True)
        (vdir / "model.echo").write_bytes(b"echo")
        files, n = variant_files(vdir)
        write_variant_meta(
            VariantMeta(
                variant="echo-fp32",
                format="echo",
                precision="fp32",
                entrypoint="model.echo",
                files=files,
                bytes=n,
                peak_memory_bytes=estimate_peak_memory("echo", n),
            ),
            vdir,
        )
        meta = make_package_meta(floor_bp=0, app="doubler")
        write_package_meta(meta, staged)
        return install_package(staged, store)


def test_kserve_serves_it_and_names_its_platform(echo_row: BackendRow, tmp_path: Path) -> None:
    package = _echo_package(Store(tmp_path / "store"))
    profile = _profile({"backend": "echo", "device": "cpu"})
    report = _echo_report()

    class Loaded:
        def __init__(self, package: ModelPackage, pin: str | None) -> None:
            metas = [v.meta for v in package.variants]
            selection = select(package.meta, metas, profile, report, resources_for(profile, report))
            assert selection.chosen is not None, selection.reason
            self.package, self.selection, self.attempts = package, selection, []
            self.variant = package.variant(selection.chosen.variant.variant)
            self.backend = create_backend(selection.chosen.backend)
            self.backend.load(self.variant, LoadOptions(device=selection.chosen.device))

    with serving([package], loader=Loaded, settings=Settings(demo=False)) as server:
        base = f"http://127.0.0.1:{server.port}/v2/models/doubler"
        meta = httpx.get(base).json()
        assert meta["platform"] == "echo_doubler"
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
        answer = httpx.post(f"{base}/infer", json=body).json()
        assert answer["outputs"][0]["data"] == [2, 4]


def test_its_packages_stop_loading_when_its_row_goes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(BACKENDS, ROW.name, ROW)
    package = _echo_package(Store(tmp_path / "store"))
    monkeypatch.delitem(BACKENDS, ROW.name)
    with pytest.raises(MetadataError, match=r"variant\.toml: format: .*unknown format 'echo'"):
        load_package(package.path)


def test_a_profile_naming_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\ndescription = "d"\npriority = 1\nprecisions = ["fp32"]\n'
        '[[targets]]\nbackend = "tflite"\ndevice = "cpu"\n'
    )
    with pytest.raises(ConfigError, match=r"targets\.0\.backend.*unknown backend 'tflite'"):
        load_profile(path)
