"""The CLI imports only what a command needs: `models list` must not pay for the runtimes,
the HTTP server or the hardware probe (start-up time at a site, issue 15 item 7)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from runtime.cli import COMMAND_MODULES, app, build_app, modules_for

HEAVY = ("onnxruntime", "openvino", "llama_cpp", "fastapi", "uvicorn", "runtime.hardware.probe")

PROBE = """
import atexit, json, sys
atexit.register(lambda: print("\\nIMPORTED " + json.dumps(sorted(sys.modules)), flush=True))
sys.argv = ["headframe", *json.loads(sys.argv[1])]
from runtime.cli import main
main()
"""


def _imported(args: list[str], env_home: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(env_home), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(env_home)},
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("IMPORTED "))
    return set(json.loads(line[len("IMPORTED ") :]))


@pytest.mark.parametrize(
    "args", [["models", "list", "--store", "STORE"], ["config", "check", "CONFIG"]]
)
def test_light_commands_do_not_import_runtimes(args: list[str], tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    config = tmp_path / "h.toml"
    config.write_text("demo = false\n")
    args = [
        str(tmp_path / "store") if a == "STORE" else str(config) if a == "CONFIG" else a
        for a in args
    ]
    imported = _imported(args, tmp_path)
    assert "runtime.cli" in imported  # the probe did run the command
    assert not [m for m in HEAVY if m in imported]


def test_every_top_level_command_has_its_modules_listed() -> None:
    # A command added without an entry in COMMAND_MODULES would load every module.
    full = typer.main.get_command(app)
    for name in full.commands:  # type: ignore[attr-defined]
        assert name in COMMAND_MODULES, f"add {name!r} to runtime.cli.COMMAND_MODULES"
        alone = typer.main.get_command(build_app(modules_for([name])))
        assert name in alone.commands  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", [["models", "select"], ["fleet", "status"], ["config", "show"]])
def test_help_shows_flags_without_value_placeholders(command: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "runtime", *command, "--help"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "--json" in out
    assert "<bool>" not in out
