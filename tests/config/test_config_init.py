"""`headframe config init`, `config show` and docs/configuration.md, all from the Settings model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.config import Settings, check_config_file
from runtime.config.doc import markdown

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _uncomment(text: str) -> str:
    """Every commented section header and `key = value` line, uncommented; the
    [[applications]] and [[streams]] blocks stay out, with their sub-tables (their
    `name` has no default)."""
    out, skipping, array = [], False, ""
    for line in text.splitlines():
        if header := re.fullmatch(r"# (\[\[?[a-z_.]+\]\]?)", line):
            if header.group(1).startswith("[["):
                array = header.group(1).strip("[]") + "."
            skipping = header.group(1).startswith("[[") or (
                bool(array) and header.group(1).strip("[]").startswith(array)
            )
            if not skipping:
                out.append(header.group(1))
        elif (pair := re.fullmatch(r"# ([a-z_]+ = .*)", line)) and not skipping:
            out.append(pair.group(1))
    return "\n".join(out) + "\n"


def test_init_writes_every_key_at_its_default(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "headframe.toml"
    result = runner.invoke(app, ["config", "init", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    # As written (all commented out) the file is valid and changes nothing.
    assert check_config_file(target).model_dump() == Settings().model_dump()
    # Uncommented, every optional section turns on at its defaults and nothing else moves.
    uncommented = tmp_path / "uncommented.toml"
    uncommented.write_text(_uncomment(text))
    got = check_config_file(uncommented).model_dump()
    expected = Settings(mqtt={"tls": {}}, fleet={}, sparkplug={"tls": {}}).model_dump()  # type: ignore[arg-type]
    assert got == expected
    for key in ("port = 8080", "queue_size = 64", 'sync = "normal"', "poll_interval_s = 900.0"):
        assert f"# {key}" in text


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "headframe.toml"
    target.write_text("demo = false\n")
    result = runner.invoke(app, ["config", "init", str(target)])
    assert result.exit_code == 2
    assert "exists (use --force to overwrite)" in result.output
    assert target.read_text() == "demo = false\n"
    assert runner.invoke(app, ["config", "init", str(target), "--force"]).exit_code == 0
    assert "# demo = true" in target.read_text()


def test_show_names_the_file_it_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path))
    result = runner.invoke(app, ["config", "show"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"Settings file: none ({tmp_path / 'headframe.toml'} does not exist)\n"
    )


def test_configuration_reference_is_current() -> None:
    # Regenerate with: python -m runtime.config.doc > docs/configuration.md
    assert (REPO / "docs" / "configuration.md").read_text() == markdown()


def test_packaged_settings_file_points_at_the_reference_and_is_valid() -> None:
    packaged = REPO / "packaging" / "headframe.toml"
    assert "docs/configuration.md" in packaged.read_text()
    check_config_file(packaged)
