"""`headframe models select` on the demo catalog: this machine and fixture hosts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from runtime.cli import app

pytestmark = pytest.mark.slow  # builds the demo catalog once per session

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "hosts"


@pytest.fixture(autouse=True)
def _repo_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    # The profiles of this checkout, not whatever a package installed under /usr/share.
    monkeypatch.setenv("HEADFRAME_PATHS__PROFILES_DIR", str(REPO / "device_profiles"))


def _run(demo_store: Path, *args: str) -> tuple[int, Any, str]:
    result = CliRunner().invoke(
        app, ["models", "select", "part-id-reader", "--store", str(demo_store), *args]
    )
    data = json.loads(result.stdout) if "--json" in args and result.stdout.strip() else None
    return result.exit_code, data, result.output


def _reasons(data: dict[str, Any]) -> dict[str, str]:
    return {r["variant"]: r["reason"] for r in data["rejected"]}


def test_picks_the_smallest_variant_that_meets_the_floor_on_this_machine(demo_store) -> None:
    code, data, _ = _run(demo_store, "--json")
    assert code == 0
    chosen = data["chosen"]
    assert set(chosen) >= {"variant", "format", "precision", "bytes", "accuracy_bp", "backend"}
    every = [chosen, *data["rejected"], *data["ranked"][1:]]
    assert len({v["variant"] for v in every}) == 5
    meeting = [r for r in data["ranked"] if r["accuracy_bp"] >= data["accuracy_floor_bp"]]
    assert chosen["bytes"] == min(r["bytes"] for r in meeting)
    assert chosen["variant"] == "pruned75-int8"


def test_a_tighter_floor_picks_a_more_accurate_variant_and_says_why(demo_store) -> None:
    code, data, _ = _run(demo_store, "--json", "--accuracy-floor-bp", "9700")
    assert code == 0
    assert data["chosen"]["accuracy_bp"] >= 9700
    assert data["chosen"]["variant"] != "pruned75-int8"
    reason = _reasons(data)["pruned75-int8"]
    assert reason == "accuracy 96.67% is below the site policy floor 97.00%"


def test_little_memory_with_a_tight_floor_picks_differently_again(demo_store) -> None:
    """40 MB at the avx2 profile's 50%: the OpenVINO IR's runtime overhead no longer fits."""
    args = ("--json", "--accuracy-floor-bp", "9700", "--profile", "x86-64-avx2")
    _, roomy, _ = _run(demo_store, *args)
    code, tight, _ = _run(demo_store, *args, "--memory-bytes", "40000000")
    assert code == 0
    assert roomy["chosen"]["variant"] == "pruned50-openvino-fp16"
    assert tight["chosen"]["variant"] == "pruned50-fp32"
    assert tight["memory_budget_bytes"] == 20_000_000
    assert _reasons(tight)["pruned50-openvino-fp16"] == (
        "peak memory 34 MB exceeds the budget 20 MB (50% of 40 MB --memory-bytes)"
    )


def test_a_fixture_host_with_too_little_memory_runs_nothing_and_exits_3(demo_store) -> None:
    code, data, _ = _run(
        demo_store,
        "--json",
        "--root",
        str(FIXTURES / "raspberry-pi-4"),
        "--memory-bytes",
        "30000000",
    )
    assert code == 3
    assert data["chosen"] is None
    assert data["profile"] == "raspberry-pi"
    assert len(data["rejected"]) == 5
    assert all("exceeds the budget 10 MB (35% of 30 MB" in r["reason"] for r in data["rejected"])


def test_a_fixture_host_uses_its_own_runtimes(demo_store) -> None:
    code, data, _ = _run(demo_store, "--json", "--root", str(FIXTURES / "raspberry-pi-4"))
    assert code == 0
    assert data["profile"] == "raspberry-pi"
    assert (data["chosen"]["variant"], data["chosen"]["backend"]) == ("pruned75-int8", "onnx")


def test_a_host_without_runtimes_exits_3_with_the_reason(demo_store) -> None:
    code, data, _ = _run(demo_store, "--json", "--root", str(FIXTURES / "qemu-x86-64-minimal"))
    assert code == 3
    assert data["chosen"] is None
    assert all("no backend can run it here" in r["reason"] for r in data["rejected"])


def test_human_output_names_the_choice_and_every_rejection(demo_store) -> None:
    code, _, out = _run(demo_store, "--accuracy-floor-bp", "9700")
    assert code == 0
    assert "accuracy floor 97.00%" in out
    assert "chosen: pruned50-openvino-fp16" in out or "chosen: pruned50-fp32" in out
    assert "rejected: pruned75-int8 (22 KB): accuracy 96.67% is below" in out


def test_bad_input_gets_a_clear_error(demo_store) -> None:
    result = CliRunner().invoke(
        app, ["models", "select", "no-such-app", "--store", str(demo_store)]
    )
    assert result.exit_code == 2
    assert "no application 'no-such-app'" in result.output
    code, _, out = _run(demo_store, "--profile", "no-such-profile")
    assert code == 2 and "no-such-profile" in out
