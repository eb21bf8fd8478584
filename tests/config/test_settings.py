from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import load_settings
from runtime.errors import ConfigError


def test_file_values_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text('[api]\nport = 9001\nhost = "127.0.0.1"\n')
    assert load_settings(cfg).api.port == 9001
    monkeypatch.setenv("HEADFRAME_API__PORT", "9002")
    assert load_settings(cfg).api.port == 9002


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "typo.toml"
    cfg.write_text("[api]\nprot = 9001\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "api.prot" in str(e.value) and str(cfg) in str(e.value)
    assert "did you mean 'api.port'?" in str(e.value)


def test_unknown_key_in_a_list_of_tables_suggests_the_closest(tmp_path: Path) -> None:
    cfg = tmp_path / "typo.toml"
    cfg.write_text('[[applications]]\nname = "belt"\nqueue_sise = 8\n')
    with pytest.raises(ConfigError, match=r"did you mean 'applications\.0\.queue_size'\?"):
        load_settings(cfg)


def test_out_of_bounds_value_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[api]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"api\.port"):
        load_settings(cfg)


def test_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADFRAME_API__PORT", "9002")
    s = load_settings(None, overrides={"api.port": 9100}, use_default_file=False)
    assert s.api.port == 9100
