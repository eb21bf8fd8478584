"""The store's lock: one fleet agent at a time works on a store, the daemon's or a CLI's.

An exclusive ``flock`` on ``<state_dir>/fleet/lock``, held for a whole sync cycle or a
rollback. A caller that finds it held either gives up at once (the daemon: it tries
again at its next cycle) or waits up to ``wait_s`` seconds, saying so once through
``on_wait`` (the CLI's ``--wait``), and then gives up with a message that says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runtime.fleet.tufclient import FleetError

POLL_S = 0.2


@contextlib.contextmanager
def store_lock(
    path: Path, wait_s: float = 0.0, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the lock at ``path`` for the ``with`` block; FleetError when it stays taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as e:
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = f" for {wait_s:g} s" if wait_s else ""
                    raise FleetError(
                        f"another fleet sync held the lock{waited} (the daemon's update cycle, "
                        "or a second CLI); try again when it is done, or wait longer with "
                        "--wait SECONDS",
                        "busy: another sync is running",
                    ) from e
                if not told and on_wait is not None:
                    told = True
                    on_wait(
                        "another fleet sync holds the lock (the daemon's update cycle, or a "
                        f"second CLI); waiting up to {wait_s:g} s for it"
                    )
                time.sleep(min(POLL_S, left))
        yield
    finally:
        os.close(fd)
