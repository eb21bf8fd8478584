"""The daemon under the packaged unit finds its directories and secrets where systemd put
them (ConfigurationDirectory=, StateDirectory=, CacheDirectory=, LoadCredential=)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.config import load_settings


@pytest.fixture
def unit_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment systemd gives the unit, with real directories under tmp_path."""
    for name in ("etc", "state", "cache", "creds"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path / "etc"))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "cache"))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    return tmp_path


def test_unit_directories_are_the_defaults(unit_env: Path) -> None:
    (unit_env / "etc" / "headframe.toml").write_text('log_level = "DEBUG"\n')
    settings = load_settings()
    assert settings.log_level == "DEBUG"  # the file in $CONFIGURATION_DIRECTORY was read
    assert settings.paths.state_dir == unit_env / "state"
    assert settings.paths.store == unit_env / "state" / "store"
    assert settings.paths.cache_dir == unit_env / "cache"


def test_config_file_paths_win_over_unit_directories(unit_env: Path) -> None:
    (unit_env / "etc" / "headframe.toml").write_text('[paths]\nstate_dir = "/srv/models"\n')
    assert load_settings().paths.state_dir == Path("/srv/models")


def test_first_of_several_directories_is_used(
    unit_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{unit_env / 'state'}:{unit_env / 'other'}")
    assert load_settings().paths.state_dir == unit_env / "state"


def test_credentials_fill_unset_secret_files(unit_env: Path) -> None:
    (unit_env / "creds" / "api-tokens").write_text("s3cret-token\n")
    (unit_env / "creds" / "mqtt-password").write_text("broker-pw")
    (unit_env / "etc" / "headframe.toml").write_text('[mqtt]\nusername = "box"\n')
    settings = load_settings()
    assert settings.api.tokens_file == unit_env / "creds" / "api-tokens"
    assert settings.mqtt is not None
    assert settings.mqtt.password_file == unit_env / "creds" / "mqtt-password"
    assert settings.mqtt.password_file.read_text() == "broker-pw"


def test_blank_credential_means_not_configured(unit_env: Path) -> None:
    # The unit's SetCredential= fallback is a lone newline when the site has no secret.
    (unit_env / "creds" / "api-tokens").write_text("\n")
    (unit_env / "creds" / "mqtt-password").write_text("\n")
    (unit_env / "etc" / "headframe.toml").write_text("[mqtt]\n")
    settings = load_settings()
    assert settings.api.tokens_file is None
    assert settings.mqtt is not None and settings.mqtt.password_file is None


def test_explicit_files_win_and_relative_ones_name_credentials(unit_env: Path) -> None:
    (unit_env / "creds" / "api-tokens").write_text("from-credential\n")
    (unit_env / "creds" / "site-pw").write_text("pw")
    explicit = unit_env / "tokens.txt"
    explicit.write_text("explicit\n")
    (unit_env / "etc" / "headframe.toml").write_text(
        f'[api]\ntokens_file = "{explicit}"\n[mqtt]\npassword_file = "site-pw"\n'
    )
    settings = load_settings()
    assert settings.api.tokens_file == explicit
    assert settings.mqtt is not None
    assert settings.mqtt.password_file == unit_env / "creds" / "site-pw"


def test_mqtt_off_stays_off_even_with_a_password_credential(unit_env: Path) -> None:
    (unit_env / "creds" / "mqtt-password").write_text("pw")
    assert load_settings().mqtt is None


def test_outside_systemd_nothing_changes(tmp_path: Path) -> None:
    config = tmp_path / "h.toml"
    config.write_text('[api]\ntokens_file = "relative.txt"\n')
    settings = load_settings(config)
    assert settings.api.tokens_file == Path("relative.txt")
    assert settings.paths.state_dir != tmp_path / "state"
