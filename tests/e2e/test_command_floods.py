"""A flood of commands that change what runs (issue 25, follow-up to items 17 and 19), on
`headframe serve` with a real Mosquitto: with their switches on, 500 MQTT `reload`
commands, 500 Sparkplug NCMD `Reload Models` and 500 DCMD `Variant` writes each used to
start one swap per command, one after another through the change path. Now a reload
asked while one is queued or running joins it (every MQTT command still gets its reply),
and a Variant write replaces the one queued for the same application, so the last write
wins and a few swaps serve the whole flood. Counted from the daemon's own change log."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import daemon_proc
from tests.support import sparkplug_wire as wire
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.mqtt_client import Requester
from tests.support.serving_models import write_linear_package
from tests.support.sparkplug_host import Host
from tests.support.wait import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

APP = "part-id-reader"
PREFIX = "headframe/s/box1"
FLOOD = 500
FEW = 50  # swaps that may serve a flood of 500 (each takes a few ms; the flood lasts longer)


def _changes(proc: subprocess.Popen[str], action: str, by: str) -> int:
    """How many changes the daemon logged: "change: <action> <app> by <by> (...)"."""
    marker = f"change: {action} {APP} by {by} "
    return sum(marker in line for line in daemon_proc.log_of(proc).splitlines())


def _status(url: str) -> Any:
    return httpx.get(f"{url}/status", timeout=10).json()


def _settled(url: str) -> bool:
    return _status(url)["changes"]["running"] is None


def test_floods_of_reloads_and_variant_writes_make_a_few_swaps(
    broker: Mosquitto, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    write_linear_package(store)  # variants "small" and "large"
    port = free_port()
    extra = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "s"\nnode = "box1"\n'
        f"[mqtt.commands]\nreload = true\nselect = true\n"
        f'[sparkplug]\nenabled = true\ngroup_id = "plant"\nedge_node_id = "box1"\n'
    )
    host = Host(broker.host, broker.port, "plant")
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port, extra))
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        host.wait(lambda: host.messages("DBIRTH"))

        # MQTT: 500 reloads, each answered, a few swaps
        with Requester(broker.host, broker.port) as r:
            for i in range(FLOOD):
                r.request(f"{PREFIX}/cmd/reload", {"app": APP}, correlation=b"%d" % i)
            assert r.wait_for(lambda r: len(r.by_corr) == FLOOD, timeout=120)
            replies = [r.replies(b"%d" % i)[0] for i in range(FLOOD)]
        assert all(rep["status"] == "ok" for rep in replies), replies[:3]
        assert all(rep["data"]["reloaded"][0]["app"] == APP for rep in replies)
        wait_until(lambda: _settled(url), "the reloads done")
        mqtt_reloads = _changes(proc, "reload", "mqtt")
        assert 1 <= mqtt_reloads < FEW, mqtt_reloads
        assert _status(url)["changes"]["reloads_joined"] == FLOOD - mqtt_reloads

        # Sparkplug: 500 Reload Models, then 500 Variant writes; the last one wins
        dbirth = next(s for s in host.messages("DBIRTH") if s.device == APP)
        first = dbirth.payload.by_name()["Variant"].value
        last = "large" if first == "small" else "small"
        reload = [wire.write_metric(name="Node Control/Reload Models", value=True)]
        for _ in range(FLOOD):
            host.command("box1", reload)
        for i in range(FLOOD):
            variant = last if i % 2 == 1 else first  # FLOOD is even: the last write is `last`
            host.command("box1", [wire.write_metric(name="Variant", value=variant)], device=APP)
        wait_until(lambda: _status(url)["sparkplug"]["counters"]["commands"] == 2 * FLOOD,
                   "every command received", timeout=120)  # fmt: skip
        wait_until(lambda: _settled(url) and _status(url)["box"]["pins"].get(APP, {})
                   .get("variant") == last, "the last write in force", timeout=120)  # fmt: skip
        served = {a["app"]: a for a in _status(url)["applications"]}
        assert served[APP]["variant"] == last
        sparkplug_reloads = _changes(proc, "reload", "sparkplug")
        pins = _changes(proc, "pin", "sparkplug")
        assert 1 <= sparkplug_reloads < FEW and 1 <= pins < FEW, (sparkplug_reloads, pins)
        counters = _status(url)["sparkplug"]["counters"]
        assert counters["variant_writes_replaced"] == FLOOD - pins
        print(f"swaps: mqtt reload {mqtt_reloads}, sparkplug reload {sparkplug_reloads}, "
              f"sparkplug variant {pins} (of {FLOOD} each)")  # fmt: skip
    finally:
        daemon_proc.stop(proc)
        host.close()
