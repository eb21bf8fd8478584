"""A built package goes through what the rest of headframe does with packages, unchanged:
``models add``, ``models select``, ``publish`` and the fleet trial (which scores the
package's own metric from the golden file, without the source model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.catalog import Store, load_package
from runtime.config import Settings
from runtime.fleet.keys import init_keys
from runtime.fleet.publish import publish
from runtime.fleet.trial import run_trial
from runtime.loading.loader import VariantLoader
from tests.support.box import box_for
from tests.support.factory_sources import Source, cli
from tests.support.synthetic import local_report, make_profile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(conv_source: Source, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from runtime.catalog.golden import write_npz

    d = tmp_path_factory.mktemp("built")
    golden = write_npz(d / "unlabelled.npz", conv_source.inputs)  # agreement: schema 2
    out = d / "pkg"
    code, _, err = cli(
        "models", "build", conv_source.model, "--app", "conv-reader", "--version", "1.2.0",
        "--golden", golden, "--out", out, "--variants", "fp32,fp16,int8-static,openvino-fp16",
        "--floor-bp", "9000", "--foundation", "convnet-base", "--sector", "manufacturing",
    )  # fmt: skip
    assert code == 0, err
    return out


def test_models_add_and_select_take_it(built: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    code, _, err = cli("models", "add", built, "--store", store)
    assert code == 0, err
    package = Store(store).load("conv-reader")
    assert package.meta.lineage.sector == "manufacturing"
    assert package.meta.quality_metric == "agreement"
    code, stdout, err = cli("models", "select", "conv-reader", "--store", store, "--json")
    assert code == 0, err
    chosen = json.loads(stdout)["chosen"]
    assert chosen is not None
    qualifying = [v for v in package.variants if (v.meta.accuracy_bp or 0) >= 9000]
    assert chosen["variant"] == min(qualifying, key=lambda v: v.meta.bytes).id


def test_build_into_a_store_directly(conv_source: Source, tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = [
        "models", "build", conv_source.model, "--app", "conv", "--version", "1.0.0",
        "--golden", conv_source.golden, "--store", store, "--variants", "fp32",
    ]  # fmt: skip
    code, _, err = cli(*args)
    assert code == 0, err
    assert Store(store).versions("conv") == ["1.0.0"]
    code, _, err = cli(*args)
    assert code == 2 and "already in the store" in err
    assert [p.name for p in store.iterdir() if p.name.startswith(".")] == []


def test_publish_and_the_fleet_trial_take_it(built: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    init_keys(keys)
    [published] = publish(tmp_path / "repo", keys, [built])
    assert published.meta.golden is not None
    package = load_package(built)
    loader = VariantLoader(
        box_for(Settings(paths={"cache_dir": tmp_path / "cache"}), local_report(), make_profile())
    )
    for v in package.variants:
        result = run_trial(package, v.id, lambda p, pin: loader(p, pin))
        assert result.ok, result.reason
        # the trial's agreement on this box is what the build recorded on this box
        assert result.accuracy_bp == v.meta.accuracy_bp, v.id
        assert result.reason.startswith("agreement ")
