"""A running daemon serves what `models add` puts in the store, and drops what `models
remove` takes out, without SIGHUP; the CLI says what the daemon will do (issue 15 item 2)."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from runtime.catalog import Store
from runtime.catalog.add import import_path
from runtime.catalog.watch import StoreWatcher, fingerprint
from runtime.catalog.writer import remove_package
from runtime.cli import app as cli
from runtime.config import default_config_file
from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.serving_models import write_linear_package
from tests.support.wait import wait_until


def _infer(url: str, app: str) -> int:
    body = {
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]
    }
    return httpx.post(f"{url}/v2/models/{app}/infer", json=body, timeout=10).status_code


def _served(url: str) -> dict[str, str]:
    doc = httpx.get(f"{url}/status", timeout=10).json()
    return {a["app"]: a.get("version", a["state"]) for a in doc["applications"]}


@pytest.mark.slow  # starts the daemon as a process
def test_models_add_and_remove_reach_a_running_daemon_without_sighup(tmp_path: Path) -> None:
    store, source = tmp_path / "store", tmp_path / "incoming"
    write_linear_package(store, app="first")
    write_linear_package(source, app="second")
    write_linear_package(source, app="second", version="1.1.0", variants=("large",))
    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port)
    # The CLI reads the same settings file as the daemon, from the default place.
    default_config_file().parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, default_config_file())
    runner = CliRunner()
    proc = daemon_proc.start(config)
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        assert _served(url) == {"first": "1.0.0"}
        assert _infer(url, "second") == 404

        added = runner.invoke(cli, ["models", "add", str(source / "second" / "1.0.0")])
        assert added.exit_code == 0, added.output
        assert f"the daemon at {url} serves it within 2 s" in added.stdout
        wait_until(lambda: _infer(url, "second") == 200, "second served after models add")
        assert _served(url) == {"first": "1.0.0", "second": "1.0.0"}

        # a newer version is swapped in; removing it goes back to the one left
        newer = runner.invoke(cli, ["models", "add", str(source / "second" / "1.1.0")])
        assert newer.exit_code == 0, newer.output
        wait_until(lambda: _served(url).get("second") == "1.1.0", "second 1.1.0 swapped in")
        gone = runner.invoke(cli, ["models", "remove", "second", "--version", "1.1.0"])
        assert gone.exit_code == 0, gone.output
        assert f"the daemon at {url} serves second 1.0.0 within 2 s" in gone.stdout
        wait_until(lambda: _served(url).get("second") == "1.0.0", "back to second 1.0.0")

        removed = runner.invoke(cli, ["models", "remove", "second"])
        assert removed.exit_code == 0, removed.output
        assert "removed second 1.0.0" in removed.stdout
        assert f"the daemon at {url} stops serving it within 2 s" in removed.stdout
        wait_until(lambda: _infer(url, "second") == 404, "second dropped after models remove")
        assert _served(url) == {"first": "1.0.0"}
        assert _infer(url, "first") == 200  # the other application was never touched

        # a store the daemon does not serve: the CLI says so
        other = runner.invoke(
            cli, ["models", "add", str(source / "second" / "1.0.0"), "--store", str(tmp_path / "o")]
        )
        assert other.exit_code == 0, other.output
        assert f"the daemon at {url} serves another store ({store})" in other.stdout
    finally:
        daemon_proc.stop(proc)
    assert proc.returncode == 0
    again = runner.invoke(cli, ["models", "add", str(source / "second" / "1.0.0")])
    assert again.exit_code == 0, again.output
    assert f"no daemon answers at {url}: start it with `headframe serve`" in again.stdout


def test_json_output_stays_json_with_the_daemon_note_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_linear_package(tmp_path / "incoming", app="second")
    monkeypatch.setenv("HEADFRAME_API__PORT", str(free_port()))  # nothing listens there
    out = CliRunner().invoke(
        cli,
        ["models", "add", str(tmp_path / "incoming" / "second" / "1.0.0"), "--json",
         "--store", str(tmp_path / "store")],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["application"] == "second"
    assert "start it with `headframe serve`" in out.stderr


def test_models_remove_refuses_what_is_not_there(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_linear_package(store, app="first")
    runner = CliRunner()
    missing = runner.invoke(cli, ["models", "remove", "nope", "--store", str(store)])
    assert missing.exit_code == 1
    assert f"{store}: no application 'nope' in the store" in missing.stderr
    version = runner.invoke(
        cli, ["models", "remove", "first", "--version", "9", "--store", str(store)]
    )
    assert version.exit_code == 1
    assert "no version '9' (it has 1.0.0)" in version.stderr
    traversal = runner.invoke(cli, ["models", "remove", "..", "--store", str(store / "first")])
    assert traversal.exit_code == 1 and (store / "first" / "1.0.0" / "package.toml").is_file()
    assert Store(store).applications() == ["first"]


def test_the_watcher_acts_once_per_change_and_never_on_a_quiet_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    source = tmp_path / "incoming"
    write_linear_package(source, app="second")
    write_linear_package(source, app="second", version="2.0.0", variants=("small",))
    changes: list[frozenset[object]] = []

    async def on_change() -> None:
        changes.append(fingerprint(store))

    async def scenario() -> list[bool]:
        watcher = StoreWatcher(lambda: store, on_change, interval_s=1.0)
        await watcher.prime()  # the store does not exist yet
        seen = [await watcher.check()]
        import_path(store, source / "second" / "1.0.0")
        seen += [await watcher.check(), await watcher.check()]
        import_path(store, source / "second" / "1.0.0", replace=True)  # a new tree, same name
        seen.append(await watcher.check())
        import_path(store, source / "second" / "2.0.0")
        store.pointer_path("second").write_text('{"version": "1.0.0"}')  # a rollback
        seen.append(await watcher.check())
        remove_package(store, "second")
        seen += [await watcher.check(), await watcher.check()]
        return seen

    assert asyncio.run(scenario()) == [False, True, False, True, True, True, False]
    assert len(changes) == 4 and changes[-1] == frozenset()


@pytest.mark.slow  # starts the daemon as a process
def test_a_daemon_that_does_not_watch_is_told_to_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, source = tmp_path / "store", tmp_path / "incoming"
    write_linear_package(store, app="first")
    write_linear_package(source, app="second")
    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port, 'tokens = ["right"]\n')
    monkeypatch.setenv("HEADFRAME_PATHS__STORE_WATCH_S", "0")  # the daemon's and the CLI's
    default_config_file().parent.mkdir(parents=True, exist_ok=True)
    default_config_file().write_text(config.read_text().replace('"right"', '"wrong"'))
    runner = CliRunner()
    proc = daemon_proc.start(config)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer right"}
    try:
        daemon_proc.wait_ready(url, proc)
        refused = runner.invoke(cli, ["models", "add", str(source / "second" / "1.0.0")])
        assert refused.exit_code == 0, refused.output  # the package is in; the note says why
        assert f"the daemon at {url} answered /status with 401" in refused.stdout
        runner.invoke(cli, ["models", "remove", "second"])

        shutil.copy(config, default_config_file())
        added = runner.invoke(cli, ["models", "add", str(source / "second" / "1.0.0")])
        assert f"the daemon at {url} does not watch the store: reload it" in added.stdout
        time.sleep(1.5)
        assert httpx.get(f"{url}/v2/models/second", headers=auth).status_code == 404
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: httpx.get(f"{url}/v2/models/second", headers=auth).status_code == 200,
            "second served after SIGHUP",
        )
    finally:
        daemon_proc.stop(proc)
