"""`headframe serve` with [sparkplug]: each application a device, a DCMD Variant write
pins and switches the variant through the box as the HTTP admin route does, and a SIGKILLed
daemon's NDEATH (the broker's Will) carries the bdSeq of its NBIRTH."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import httpx
import pytest

from tests.support import daemon_proc
from tests.support import sparkplug_wire as wire
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.mqtt_bridge import infer_body
from tests.support.prometheus import scraped
from tests.support.serving_models import write_linear_package
from tests.support.sparkplug_host import Host

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def _reported(host: Host, alias: int | None, value: object) -> bool:
    return any(
        m.alias == alias and m.value == value
        for s in host.messages("DDATA")
        for m in s.payload.metrics
    )


def test_devices_dcmd_variant_switch_and_ndeath_on_sigkill(
    broker: Mosquitto, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    write_linear_package(store)  # variants "small" and "large"
    write_linear_package(store, app="second-app", variants=("only",))
    port = free_port()
    extra = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "s"\nnode = "box1"\n'
        f"[mqtt.commands]\nselect = true\n"
        f'[sparkplug]\nenabled = true\ngroup_id = "plant"\nedge_node_id = "box1"\n'
        f"scan_interval_s = 0.1\n"
    )
    host = Host(broker.host, broker.port, "plant")
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port, extra))
    url = f"http://127.0.0.1:{port}"
    try:
        daemon_proc.wait_ready(url, proc)
        host.wait(lambda: len(host.messages("DBIRTH")) == 2)
        dbirth = next(s for s in host.messages("DBIRTH") if s.device == "part-id-reader")
        assert {s.device for s in host.messages("DBIRTH")} == {"part-id-reader", "second-app"}
        metrics = dbirth.payload.by_name()
        first = metrics["Variant"].value
        assert first in ("small", "large")
        other = "large" if first == "small" else "small"
        apps = httpx.get(f"{url}/status", timeout=5).json()["applications"]
        before = next(a for a in apps if a["app"] == "part-id-reader")
        assert metrics["Properties/Backend"].value == before["backend"]
        assert metrics["Variant"].value == before["variant"]
        assert metrics["Requests"].value == 0
        nbirth = host.messages("NBIRTH")[0].payload
        profile = httpx.get(f"{url}/status", timeout=5).json()["profile"]["name"]
        assert nbirth.by_name()["Properties/Profile"].value == profile  # the box's description

        # requests served over HTTP show up as DDATA on the device (report by exception)
        r = httpx.post(f"{url}/v2/models/part-id-reader/infer", json=infer_body(), timeout=10)
        assert r.status_code == 200
        requests_alias = metrics["Requests"].alias
        host.wait(lambda: _reported(host, requests_alias, 1))

        # the SCADA operator writes the Variant metric (by name, as Ignition does)
        host.command("box1", [wire.write_metric(name="Variant", value=other)],
                     device="part-id-reader")  # fmt: skip
        variant_alias = metrics["Variant"].alias
        host.wait(lambda: _reported(host, variant_alias, other))
        status = httpx.get(f"{url}/status", timeout=5).json()
        served = {a["app"]: a for a in status["applications"]}
        assert served["part-id-reader"]["variant"] == other
        # the same operator pin as over HTTP and MQTT: kept by the box, named by its source
        pin = status["box"]["pins"]["part-id-reader"]
        assert pin["variant"] == other and "by sparkplug" in pin["text"]
        assert status["sparkplug"]["state"] == "online"
        assert status["sparkplug"]["devices"] == ["part-id-reader", "second-app"]
        metrics = scraped(httpx.get(f"{url}/metrics", timeout=5).text)
        assert metrics["headframe_sparkplug_online"] == {(): 1.0}
        sent_by_kind = metrics["headframe_sparkplug_messages_total"]
        assert sent_by_kind[(("kind", "births"),)] == status["sparkplug"]["counters"]["births"]
        assert sent_by_kind[(("kind", "dbirth"),)] >= 2
        assert "<h2>sparkplug</h2>" in httpx.get(f"{url}/", timeout=5).text  # the status page

        # an unknown variant is refused by the swap; the daemon keeps serving it as it was
        host.command("box1", [wire.write_metric(name="Variant", value="nope")],
                     device="part-id-reader")  # fmt: skip
        host.wait(lambda: httpx.get(f"{url}/status", timeout=5).json()["sparkplug"]["counters"]
                  ["command_errors"] == 1)  # fmt: skip
        metrics = scraped(httpx.get(f"{url}/metrics", timeout=5).text)
        assert metrics["headframe_sparkplug_messages_total"][(("kind", "command_errors"),)] == 1
        r = httpx.post(f"{url}/v2/models/part-id-reader/infer", json=infer_body(), timeout=10)
        assert r.status_code == 200
        pins = httpx.get(f"{url}/status", timeout=5).json()["box"]["pins"]
        assert pins["part-id-reader"]["variant"] == other  # the refused one pinned nothing

        # an application gone from the store and a SIGHUP: its device dies (DDEATH)
        shutil.rmtree(store / "second-app")
        proc.send_signal(signal.SIGHUP)
        ddeath = host.wait(lambda: host.messages("DDEATH"))[0]
        assert ddeath.device == "second-app" and ddeath.payload.seq is not None

        proc.kill()  # SIGKILL: no goodbye; the broker publishes the Will
        proc.wait(10)
        ndeath = host.wait(lambda: host.messages("NDEATH"))[0].payload
        assert ndeath.seq is None
        assert ndeath.by_name()["bdSeq"].value == nbirth.by_name()["bdSeq"].value
        sent = ("NBIRTH", "DBIRTH", "NDATA", "DDATA", "DDEATH")
        seqs = [s.payload.seq for s in host.messages() if s.kind in sent]
        assert seqs == [i % 256 for i in range(len(seqs))]
    finally:
        host.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
