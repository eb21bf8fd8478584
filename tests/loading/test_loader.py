"""The loader's fallback chain on real files: what an operator sees when a file is bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.catalog import ModelPackage
from runtime.config import Settings
from runtime.errors import BackendLoadError
from runtime.loading.loader import VariantLoader
from tests.support.box import box_for
from tests.support.onnx_models import VariantSpec, write_package
from tests.support.synthetic import local_report, make_profile, nvidia_gpu

SPECS = [
    VariantSpec("small", hidden=8, accuracy_bp=9300),
    VariantSpec("medium", hidden=32, accuracy_bp=9500),
    VariantSpec("large", hidden=128, accuracy_bp=9700),
]


@pytest.fixture
def package(tmp_path: Path) -> ModelPackage:
    return write_package(tmp_path / "store", SPECS)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(paths={"state_dir": tmp_path / "state", "cache_dir": tmp_path / "cache"})


def _loader(settings: Settings, **profile: object) -> VariantLoader:
    return VariantLoader(box_for(settings, local_report(), make_profile(**profile)))


def test_loads_the_smallest_variant_on_the_first_target(package, settings) -> None:
    loaded = _loader(settings)(package)
    assert loaded.variant.id == "small"
    assert loaded.backend.name == "onnx"
    assert [(a.variant, a.backend, a.device, a.ok) for a in loaded.attempts] == [
        ("small", "onnx", "cpu", True)
    ]
    out = loaded.backend.infer({"pixels": np.zeros((2, 64), np.float32)})
    assert out["probabilities"].shape == (2, 10)
    assert any((settings.paths.cache_dir / "onnx").glob("*.onnx"))  # cache_dir from settings


def test_a_corrupted_file_fails_its_check_and_the_next_variant_loads(package, settings) -> None:
    model = package.variant("small").entrypoint
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only the sha256 can tell
    model.write_bytes(bytes(data))
    loaded = _loader(settings)(package)
    assert loaded.variant.id == "medium"
    first, second = loaded.attempts
    assert (first.variant, first.ok) == ("small", False)
    assert "sha256" in first.error and "does not match variant.toml" in first.error
    assert "corrupted" in first.error
    assert (second.variant, second.ok) == ("medium", True)


def test_a_truncated_file_names_both_sizes(package, settings) -> None:
    model = package.variant("small").entrypoint
    size = model.stat().st_size
    model.write_bytes(model.read_bytes()[:100])
    loaded = _loader(settings)(package)
    assert loaded.variant.id == "medium"
    assert f"100 bytes, variant.toml says {size}" in loaded.attempts[0].error


def test_a_file_the_runtimes_reject_falls_back_target_by_target(tmp_path, settings) -> None:
    """Metadata that matches a garbage file: every backend tries, then the next variant."""
    package = write_package(tmp_path / "s", SPECS[:2])
    small = package.variant("small")
    small.entrypoint.write_bytes(b"\x00not an onnx graph" * 50)
    package = _rewrite_digests(package)
    loaded = _loader(settings)(package)
    assert loaded.variant.id == "medium"
    tried = [(a.variant, a.backend, a.ok) for a in loaded.attempts]
    assert tried == [
        ("small", "onnx", False),
        ("small", "openvino", False),
        ("medium", "onnx", True),
    ]
    assert "onnxruntime cannot load it" in loaded.attempts[0].error
    assert "OpenVINO cannot read it" in loaded.attempts[1].error


def test_when_nothing_loads_the_error_lists_every_attempt(tmp_path, settings) -> None:
    package = write_package(tmp_path / "s", SPECS[:2])
    for v in package.variants:
        v.entrypoint.write_bytes(b"junk")
    with pytest.raises(BackendLoadError) as info:
        _loader(settings, targets=[{"backend": "onnx", "device": "cpu"}])(package)
    err = info.value
    assert [(a.variant, a.ok) for a in err.attempts] == [("small", False), ("medium", False)]
    assert err.message.startswith("could not load any variant of toy-classifier 1.0.0:")
    assert "small on onnx/cpu:" in err.message and "medium on onnx/cpu:" in err.message


def test_when_nothing_qualifies_the_error_gives_the_reasons(package, settings) -> None:
    settings = settings.model_copy(update={"memory_bytes": 1000})
    with pytest.raises(
        BackendLoadError, match=r"no variant of toy-classifier 1\.0\.0 can run here"
    ):
        _loader(settings)(package)
    try:
        _loader(settings)(package)
    except BackendLoadError as e:
        assert "peak memory" in e.message and "exceeds the budget 500 B" in e.message


def test_site_policy_in_settings_raises_the_floor_and_pins(package, tmp_path) -> None:
    settings = Settings(
        paths={"cache_dir": tmp_path / "c"},
        applications=[{"name": "toy-classifier", "accuracy_floor_bp": 9600}],
    )
    assert _loader(settings)(package).variant.id == "large"
    pinned = Settings(
        paths={"cache_dir": tmp_path / "c"},
        applications=[{"name": "toy-classifier", "variant": "medium"}],
    )
    assert _loader(pinned)(package).variant.id == "medium"
    assert _loader(pinned)(package, pin="large").variant.id == "large"  # explicit pin wins


def test_options_carry_threads_providers_cache_and_gpu_layers(package, settings) -> None:
    profile = make_profile(
        threads={"intra_op": 3, "inter_op": 2},
        targets=[
            {"backend": "onnx", "device": "gpu", "providers": ["CUDAExecutionProvider"]},
            {"backend": "onnx", "device": "cpu"},
        ],
    )
    loader = VariantLoader(box_for(settings, local_report(accelerators=[nvidia_gpu()]), profile))
    small = package.variant("small")
    gpu = loader.targets.options_for(small, profile.targets[0])
    assert (gpu.device, gpu.providers, gpu.gpu_layers) == ("gpu", ("CUDAExecutionProvider",), -1)
    cpu = loader.targets.options_for(small, profile.targets[1])
    assert (cpu.intra_op_threads, cpu.inter_op_threads, cpu.gpu_layers) == (3, 2, 0)
    assert cpu.cache_dir == str(settings.paths.cache_dir)


def _rewrite_digests(package: ModelPackage) -> ModelPackage:
    """Make variant.toml agree with whatever bytes are on disk now (a bad build, signed)."""
    import hashlib
    import re

    from runtime.catalog import load_package

    for v in package.variants:
        toml = v.path / "variant.toml"
        data = v.entrypoint.read_bytes()
        text = toml.read_text()
        text = re.sub(
            r'sha256 = "[0-9a-f]+"', f'sha256 = "{hashlib.sha256(data).hexdigest()}"', text
        )
        text = re.sub(r"^size = \d+", f"size = {len(data)}", text, flags=re.M)
        text = re.sub(r"^bytes = \d+", f"bytes = {len(data)}", text, flags=re.M)
        toml.write_text(text)
    return load_package(package.path)


def test_the_loader_skips_a_target_that_cannot_serve_the_task(tmp_path, settings) -> None:
    """Issue 25, item 9: an ONNX embedding package with OpenVINO first loads on
    onnxruntime, whose sentence encoder takes text; OpenVINO never gets it."""
    from tests.support.embedding_models import write_onnx_encoder_package

    encoder = write_onnx_encoder_package(tmp_path / "store")
    loader = _loader(
        settings,
        targets=[{"backend": "openvino", "device": "cpu"}, {"backend": "onnx", "device": "cpu"}],
    )
    loaded = loader(encoder)
    assert [(a.backend, a.ok) for a in loaded.attempts] == [("onnx", True)]
    assert "skipped openvino/cpu: openvino cannot serve embedding packages" in (
        loaded.selection.chosen.reason
    )
    out = loaded.backend.infer({"text": np.array([b"pump pressure high"], dtype=object)})
    assert out["embedding"].shape[0] == 1 and out["tokens"].tolist() == [3]
