"""A box for a profile and a report already in hand: tests and benches that pick the
hardware and the profile themselves instead of probing (runtime.box.build_box probes)."""

from __future__ import annotations

from runtime.box import Box, PinStore, pins_path
from runtime.config import Settings
from runtime.hardware import HardwareReport
from runtime.profiles import DeviceProfile


def box_for(settings: Settings, report: HardwareReport, profile: DeviceProfile) -> Box:
    """The box's policy over ``report`` and ``profile``; its pins in the settings' state dir."""
    return Box(settings, report, profile, None, PinStore(pins_path(settings)))
