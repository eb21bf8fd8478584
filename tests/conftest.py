"""Shared fixtures. Real things only: real files, real servers on loopback ports the
tests pick, real brokers. Fakes only for hardware that cannot exist here, as fixture
trees of the files the probe reads."""

from __future__ import annotations

import locale
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixtures that tests in several directories use; each module says what it holds.
pytest_plugins = [
    "tests.support.mqtt_fixtures",
    "tests.support.factory_sources",
    "tests.support.fleet_repo",
    "tests.support.profile_fixtures",
    "tests.support.serving_fixtures",
    "tests.support.text_servers",
]

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def repo_root() -> Path:
    return REPO


_LOCALE = locale.setlocale(locale.LC_CTYPE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """The process's text encoding must not change under the suite: once, in a full run, a
    native library (never identified) set LC_CTYPE to "C" mid-run, and every later test
    that read a UTF-8 file failed with an 'ascii' codec error. Put it back and say which
    test it happened in, so the next time names the culprit."""
    yield
    if locale.setlocale(locale.LC_CTYPE) != _LOCALE:
        changed = locale.setlocale(locale.LC_CTYPE)
        locale.setlocale(locale.LC_CTYPE, _LOCALE)
        warnings.warn(f"{item.nodeid} changed LC_CTYPE to {changed!r}; restored", stacklevel=1)


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test away from the developer's real config, state and cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    # As root the defaults are /etc/headframe, /var/lib/headframe and /var/cache/headframe
    # (a CI machine, a package test): point them here too, through the variables systemd
    # sets for the unit (runtime/config/systemd_env.py), so no test writes to the real ones.
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(home / "etc"))
    monkeypatch.setenv("STATE_DIRECTORY", str(home / "state"))
    monkeypatch.setenv("CACHE_DIRECTORY", str(home / "cache-dir"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    for key in list(__import__("os").environ):
        if key.startswith("HEADFRAME_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store holding the built demo catalog (part-id-reader 1.0.0), built once
    per session. Treat it as read-only: copy it if a test must change the store."""
    from runtime.demo import build_demo_catalog

    store = tmp_path_factory.mktemp("demo-store")
    build_demo_catalog(store)
    return store
