"""Operator pins: one JSON file under the state directory, written atomically.

A pin names the variant an operator wants for an application (HTTP admin, MQTT
``select``, Sparkplug DCMD ``Variant``, ``headframe models use``); it survives a restart.
The box (runtime/box/policy.py) decides what a pin means against the other layers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.files import atomic_write_json

log = logging.getLogger(__name__)

PINS_FILE = "pins.json"


@dataclass(frozen=True)
class Pin:
    """An operator's pin: ``variant`` of an application since ``since`` (unix time),
    set through ``source`` ("http", "mqtt", "cli", "sparkplug")."""

    variant: str
    since: float
    source: str

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.since))
        return f"pinned (since {when}, by {self.source})"

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "since": self.since, "source": self.source}


class PinStore:
    """Operator pins in one JSON file, written atomically (write, fsync, rename).

    Thread-safe: the HTTP admin route, the MQTT bridge and the loader's thread share it.
    A corrupt file is set aside with a warning (the pins are lost, the daemon starts)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._pins: dict[str, Pin] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read the file (SIGHUP, or after ``headframe models use`` wrote it)."""
        pins: dict[str, Pin] = {}
        try:
            raw = json.loads(self.path.read_text())
            for app, entry in raw.get("pins", {}).items():
                pins[app] = Pin(str(entry["variant"]), float(entry["since"]), str(entry["source"]))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("%s is unreadable (%s); starting without operator pins", self.path, e)
        with self._lock:
            self._pins = pins

    def get(self, app: str) -> Pin | None:
        with self._lock:
            return self._pins.get(app)

    def all(self) -> dict[str, Pin]:
        with self._lock:
            return dict(self._pins)

    def set(self, app: str, variant: str | None, source: str) -> Pin | None:
        """Pin ``variant`` (None clears the pin); persisted before this returns."""
        with self._lock:
            pin = Pin(variant, time.time(), source) if variant is not None else None
            if pin is None:
                self._pins.pop(app, None)
            else:
                self._pins[app] = pin
            doc = {"pins": {a: p.to_dict() for a, p in sorted(self._pins.items())}}
            atomic_write_json(self.path, doc)
            return pin

    def restore(self, app: str, pin: Pin | None) -> None:
        """Put back ``pin`` as it was (a select that failed to load undoes its pin)."""
        with self._lock:
            if pin is None:
                self._pins.pop(app, None)
            else:
                self._pins[app] = pin
            atomic_write_json(
                self.path, {"pins": {a: p.to_dict() for a, p in sorted(self._pins.items())}}
            )


@dataclass(frozen=True)
class PinState:
    """Which pin is in force for an application, and where it came from."""

    variant: str | None
    source: str  # "governor", "operator", "settings", "auto"
    text: str
