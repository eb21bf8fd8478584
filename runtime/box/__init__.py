"""The box's policy: which profile, floor, memory budget, pin and objective apply here.

Owns: ``Box`` and ``build_box`` (``policy``), operator pins (``pins``), and the frozen
description of the box that the status page and MQTT ``info`` show (``description``).
Built once by the daemon (again on SIGHUP) and once per CLI command; nobody recomputes it.
May import: the foundation, config, hardware, catalog, profiles, selection.
"""

from __future__ import annotations

from runtime.box.pins import (
    PINS_FILE as PINS_FILE,
)
from runtime.box.pins import (
    Pin as Pin,
)
from runtime.box.pins import (
    PinState as PinState,
)
from runtime.box.pins import (
    PinStore as PinStore,
)
from runtime.box.policy import (
    Box as Box,
)
from runtime.box.policy import (
    build_box as build_box,
)
from runtime.box.policy import (
    pins_path as pins_path,
)
from runtime.box.policy import (
    site_floors as site_floors,
)
