"""The fleet agent's persisted state: a stage and a reason per application.

Stages: idle, checking, downloading, verifying, trial, active, failed, rolled_back, and
refused (the repository's metadata was refused, while the current version serves).
The file (``<state_dir>/fleet/state.json``) is replaced atomically on every change, so
``headframe fleet status`` in another process and the next start after a power cut both
read a whole record. Which version *serves* is not here: that is the store's pointer
(``<store>/<app>/active.json``); this file says what the agent is doing and why, and
which versions it must never retry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from runtime.files import atomic_write_json

log = logging.getLogger(__name__)

Stage = Literal[
    "idle", "checking", "downloading", "verifying", "trial", "active", "failed", "rolled_back",
    "refused",
]  # fmt: skip
STAGES: tuple[str, ...] = (
    "idle", "checking", "downloading", "verifying", "trial", "active", "failed", "rolled_back",
    "refused",
)  # fmt: skip
Listener = Callable[[dict[str, Any]], None]
PROGRESS_EVERY_S = 1.0


@dataclass
class AppState:
    stage: str = "idle"
    reason: str = ""
    pending: str | None = None  # the version being worked on
    variant: str | None = None  # its chosen variant
    bytes_done: int = 0
    bytes_total: int = 0
    bad: dict[str, str] = field(default_factory=dict)  # version -> why; never retried
    updated_at: float = 0.0


class FleetState:
    """Thread-safe, persisted, observable. Listeners get the whole snapshot on change.

    Two processes may share the file (the daemon's agent and ``headframe rollback``), so
    every persisted change is a read-modify-write under an exclusive lock on
    ``state.json.lock``: a bad mark written by one is never lost by the other."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self.apps: dict[str, AppState] = {}
        self.last_check: float | None = None
        self.last_error: str = ""
        self._last_tick = 0.0
        self._load()

    @contextlib.contextmanager
    def _file_locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reload(self) -> None:
        """Re-read the file (another process may have changed it)."""
        with self._lock:
            self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            # A state file we cannot read must not stop the box; the pointer still rules.
            log.warning("%s: unreadable fleet state, starting afresh: %s", self.path, e)
            return
        self.last_check = raw.get("last_check")
        self.last_error = raw.get("last_error", "")
        known = AppState.__dataclass_fields__
        loaded = {}
        for app, rec in dict(raw.get("apps", {})).items():
            loaded[app] = AppState(**{k: v for k, v in rec.items() if k in known})
            if app in self.apps:  # progress ticks live in memory only
                loaded[app].bytes_done = max(loaded[app].bytes_done, self.apps[app].bytes_done)
        self.apps.update(loaded)

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def app(self, name: str) -> AppState:
        with self._lock:
            return self.apps.setdefault(name, AppState())

    def update(self, app: str, *, persist: bool = True, **changes: Any) -> None:
        """Change ``app``'s record; persisted at once unless it is a progress tick."""
        with self._lock, self._file_locked() if persist else contextlib.nullcontext():
            if persist:
                self._load()
            rec = self.apps.setdefault(app, AppState())
            for k, v in changes.items():
                if not hasattr(rec, k):
                    raise AttributeError(f"AppState has no field {k!r}")
                setattr(rec, k, v)
            rec.updated_at = time.time()
            if "stage" in changes:
                log.info("fleet %s: %s%s", app, rec.stage, f" ({rec.reason})" if rec.reason else "")
            if persist:
                self._save_locked()
            else:
                # Progress ticks arrive per chunk; listeners (MQTT) hear at most one a second.
                now = time.monotonic()
                if now - self._last_tick < PROGRESS_EVERY_S:
                    return
                self._last_tick = now
        self._notify()

    def mark_bad(self, app: str, version: str, reason: str) -> None:
        with self._lock, self._file_locked():
            self._load()
            self.apps.setdefault(app, AppState()).bad[version] = reason
            self._save_locked()
        self._notify()

    def is_bad(self, app: str, version: str) -> bool:
        with self._lock:
            self._load()
            return version in self.apps.get(app, AppState()).bad

    def checked(self, error: str = "") -> None:
        with self._lock, self._file_locked():
            self._load()
            self.last_check = time.time()
            self.last_error = error
            self._save_locked()
        self._notify()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "last_check": self.last_check,
                "last_error": self.last_error,
                "apps": {k: asdict(v) for k, v in sorted(self.apps.items())},
            }

    def _save_locked(self) -> None:
        data = {
            "last_check": self.last_check,
            "last_error": self.last_error,
            "apps": {k: asdict(v) for k, v in self.apps.items()},
        }
        atomic_write_json(self.path, data)

    def _notify(self) -> None:
        snap = self.snapshot()
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:  # a broken listener (MQTT down) must not stop an update
                log.exception("fleet state listener failed")


PAUSE_ENV = "HF_FLEET_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "HF_FLEET_TEST_PAUSE_FILE"


def pause_point(stage: str) -> None:
    """Test hook for the power-loss tests: when ``HF_FLEET_TEST_PAUSE_AT`` names this
    stage, touch ``HF_FLEET_TEST_PAUSE_FILE`` and wait to be SIGKILLed. Off otherwise
    (the variable is not a setting and has no HEADFRAME_ prefix on purpose)."""
    if os.environ.get(PAUSE_ENV) != stage:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(stage)
    log.warning("test hook: paused at %s", stage)
    while True:
        time.sleep(3600)
