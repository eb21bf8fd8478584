"""``headframe models build`` on a GGUF source: a llama.cpp quantization ladder and a
layer-pruned rung, each scored by token agreement with the source on the golden text."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from runtime.catalog import load_package
from tests.support.factory_sources import cli
from tests.support.gguf_models import write_llama_gguf
from tests.support.prereq import need_module

need_module("llama_cpp")
pytestmark = [pytest.mark.slow, pytest.mark.llm]

TEXT = (
    "the belt motor stopped and the conveyor alarm started. check the pump pressure and "
    "the valve status on line one. hello world, the sensor temperature is ok."
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("gguf")
    # "small" (width 256): k-quants need rows that are a multiple of 256
    model = write_llama_gguf(d / "small-f16.gguf", size="small", precision="f16")
    golden = d / "golden.txt"
    golden.write_text(TEXT)
    return model, golden


def _next_ids(path: Path, tokens: np.ndarray) -> np.ndarray:
    """Next-token argmaxes by llama.cpp directly, not through the factory."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=128, n_threads=1, logits_all=True, verbose=False)
    llm.eval([int(t) for t in tokens])
    ids = np.argmax(np.asarray(llm.scores[: len(tokens) - 1]), axis=1)
    llm.close()
    return ids


def test_quantization_ladder_and_pruned_rung(source: tuple[Path, Path], tmp_path: Path) -> None:
    model, golden = source
    out = tmp_path / "pkg"
    code, stdout, err = cli(
        "models", "build", model, "--app", "line-assistant", "--version", "1.0.0",
        "--golden", golden, "--out", out, "--variants", "q8_0,q6_k,q4_k_m,q2_k",
        "--prune-layers", "1", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    assert report["metric"] == "token_agreement" and report["details"]["source_perplexity"] > 0
    package = load_package(out)
    meta = tomllib.loads((out / "package.toml").read_text())
    assert meta["schema_version"] == 2 and meta["quality_metric"] == "token_agreement"
    assert package.meta.task == "text"
    ladder = ["q8_0", "q6_k", "q4_k_m", "q2_k"]
    sizes = [package.variant(q).meta.bytes for q in ladder]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
    with np.load(out / "golden.npz") as z:
        assert bytes(z["text"]).decode() == TEXT
        tokens, ref_next = z["tokens"], z["ref_next"]
    np.testing.assert_array_equal(_next_ids(model, tokens), ref_next)
    for v in package.variants:
        assert v.meta.format == "gguf" and v.meta.latency_us
        # llama.cpp maps the file once; the estimate adds its base and the KV cache
        assert v.meta.peak_memory_bytes > v.meta.bytes + 8 * 2**20
        got = _next_ids(v.entrypoint, tokens)
        independent = int(np.floor((got == ref_next).mean() * 10_000 + 0.5))
        assert v.meta.accuracy_bp == independent, v.id
        assert (
            "perplexity" in next(r for r in report["variants"] if r["variant"] == v.id)["details"]
        )
    pruned = package.variant("drop1-q8_0")
    assert pruned.meta.pruning_bp == 2500  # one block of four
    assert pruned.meta.bytes < package.variant("q8_0").meta.bytes
    import gguf

    reader = gguf.GGUFReader(str(pruned.entrypoint))
    assert reader.get_field("llama.block_count").contents() == 3


def test_measured_pruning_and_jsonl_golden(source: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = source
    golden = tmp_path / "golden.jsonl"
    golden.write_text("\n".join(json.dumps({"text": t}) for t in TEXT.split(". ")) + "\n")
    out = tmp_path / "pkg"
    code, stdout, err = cli(
        "models", "build", model, "--app", "a", "--version", "1.0.0", "--golden", golden,
        "--out", out, "--variants", "q8_0", "--prune-layers", "2", "--prune-choice", "measured",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(stdout)
    costs = {int(k): v for k, v in report["details"]["block_drop_agreement_bp"].items()}
    assert sorted(costs) == [0, 1, 2, 3]
    dropped = next(v for v in report["variants"] if v["variant"] == "drop2-q8_0")["details"]
    best_two = sorted(sorted(costs, key=lambda i: (-costs[i], i))[:2])
    assert dropped["dropped_blocks"] == best_two


def test_gguf_bad_input(source: tuple[Path, Path], tmp_path: Path) -> None:
    model, golden = source
    quantized = write_llama_gguf(tmp_path / "q8.gguf", size="tiny", precision="q8_0")
    out = tmp_path / "out"
    base = ("models", "build", "--app", "a", "--version", "1.0.0", "--out", out)
    code, _, err = cli(*base, quantized, "--golden", golden)
    assert code == 2 and f"{quantized}: the GGUF is already q8_0" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    code, _, err = cli(*base, model, "--golden", empty)
    assert code == 2 and err.strip() == f"error: {empty}: the golden text is empty"
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 40)
    code, _, err = cli(*base, broken, "--golden", golden)
    assert code == 2 and f"{broken}: not a valid GGUF file" in err
    code, _, err = cli(*base, model, "--golden", golden, "--variants", "q8_0,int8-static")
    assert code == 2 and "unknown variant int8-static for a GGUF source" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_fleet_trial_scores_token_agreement_on_the_box(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    """The trial loads each rung with the real llama backend and reproduces, from the
    golden file alone, the token agreement the build recorded."""
    from runtime.config import Settings
    from runtime.fleet.trial import run_trial
    from runtime.hardware.runtimes import probe_runtime_live
    from runtime.loading.loader import VariantLoader
    from tests.support.box import box_for
    from tests.support.synthetic import make_profile, make_report

    model, golden = source
    out = tmp_path / "pkg"
    code, _, err = cli(
        "models", "build", model, "--app", "a", "--version", "1.0.0", "--golden", golden,
        "--out", out, "--variants", "q8_0,q4_k_m", "--floor-bp", "5000",
    )  # fmt: skip
    assert code == 0, err
    package = load_package(out)
    profile = make_profile(
        targets=[{"backend": "llama", "device": "cpu"}], precisions=["q8_0", "q4_k_m"]
    )
    report = make_report(runtimes=[probe_runtime_live("llama_cpp")])
    loader = VariantLoader(box_for(Settings(paths={"cache_dir": tmp_path / "c"}), report, profile))
    for v in package.variants:
        result = run_trial(package, v.id, lambda p, pin: loader(p, pin))
        assert result.ok, result.reason
        assert result.accuracy_bp == v.meta.accuracy_bp, v.id
        assert result.reason.startswith("token_agreement ")
    strict = run_trial(package, "q4_k_m", lambda p, pin: loader(p, pin), floor_bp=10_000)
    assert not strict.ok and "below the floor 10000 bp" in strict.reason
