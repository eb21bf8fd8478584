"""`headframe serve` at start removes what a killed writer left in its store (issue 25,
item 15): a `models build` or `models add` stopped by SIGKILL, the OOM killer or a power
cut leaves its ``.staging-*`` directory; the daemon sweeps it before it loads, and leaves
the directory of a writer that still runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.catalog.staging import make_staging_dir
from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.serving_models import write_linear_package
from tests.support.staging import left_by_a_killed_writer, staging_names

pytestmark = pytest.mark.slow  # starts the daemon as a process


def test_the_daemon_sweeps_its_store_at_start(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write_linear_package(store)
    dead = left_by_a_killed_writer(store, "build")
    writing = make_staging_dir(store).name  # this test's process still runs
    port = free_port()
    config = daemon_proc.write_config(tmp_path, store, port)
    proc = daemon_proc.start(config)
    try:
        daemon_proc.wait_ready(f"http://127.0.0.1:{port}", proc)
        assert staging_names(store) == [writing], daemon_proc.log_of(proc)
        assert dead in daemon_proc.log_of(proc)  # the log says what it removed
    finally:
        daemon_proc.stop(proc)
