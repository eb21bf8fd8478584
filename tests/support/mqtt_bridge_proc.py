"""Run the MQTT bridge in its own process, so a test can kill it (SIGKILL) mid-flight.

    python -m tests.support.mqtt_bridge_proc PACKAGE_DIR STATE_DIR SETTINGS_JSON [VARIANT]

SIGTERM stops it cleanly (status "offline"); SIGKILL leaves the Last Will to the broker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from runtime.catalog import load_package
from runtime.config import MqttSettings
from runtime.mqtt.bridge import MqttBridge
from runtime.mqtt.paho_compat import start_up
from runtime.service import InferenceService
from runtime.service.changes import ChangePath
from tests.support.loaders import box_loader, make_box


async def main(
    package_dir: Path, state_dir: Path, settings: MqttSettings, pin: str | None = None
) -> None:
    package = load_package(package_dir)
    box = make_box(state_dir / "box")
    if pin is not None:
        box.set_pin(package.application, pin, "test")
    service = InferenceService(box_loader(box))
    await service.add(package)
    mode = start_up(settings)  # as the daemon does: the paho check, FastProperties
    bridge = MqttBridge(
        settings,
        service,
        changes=ChangePath(service, lambda: box),
        info=lambda: {"profile": "test"},
        state_dir=state_dir,
        fast_path=mode.fast,
    )
    bridge.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await bridge.stop()
    await service.close(2.0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:  # the daemon's loop: uvloop when installed (runtime.cli.serve_cmd)
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(
            main(
                Path(sys.argv[1]),
                Path(sys.argv[2]),
                MqttSettings.model_validate_json(sys.argv[3]),
                sys.argv[4] if len(sys.argv) > 4 else None,
            )
        )
