"""The README's picture commands, run as written against `headframe serve` with the demo:
`headframe demo pictures .`, the curl line and the mosquitto_pub line (only the port the
test's server and broker got is put in)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import daemon_proc
from tests.support.mosquitto import free_port
from tests.support.mqtt_client import Requester
from tests.support.prereq import need_tool

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_command(starts: str, having: str = "") -> str:
    """The README's first shell command that begins with ``starts`` and holds ``having``,
    continuation lines joined."""
    lines = README.read_text().splitlines()
    for n, line in enumerate(lines):
        if not line.startswith(starts):
            continue
        command = line
        while command.endswith("\\"):
            n += 1
            command = command[:-1] + " " + lines[n].strip()
        if having in command:
            return command.split("  #")[0].strip()
    raise AssertionError(f"README.md has no command {starts!r} with {having!r}")


def _top(reply: dict[str, Any]) -> list[str]:
    out = reply["outputs"][0]
    assert (out["datatype"], out["shape"]) == ("BYTES", [1, 3])
    return str(out["data"][0]).split(":")


def test_readme_picture_commands_work_verbatim(
    demo_store: Path, tmp_path: Path, make_broker: Any
) -> None:
    need_tool("curl", "mosquitto_pub")
    broker = make_broker("site")
    broker.start()
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    port = free_port()
    mqtt = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "mine-7"\nnode = "crusher-2"\n'
    )
    proc = daemon_proc.start(daemon_proc.write_config(tmp_path, store, port, mqtt))
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    try:
        daemon_proc.wait_ready(f"http://127.0.0.1:{port}", proc)
        make = readme_command(".venv/bin/headframe demo pictures")
        make = make.replace(".venv/bin/headframe", f"{sys.executable} -m runtime")
        subprocess.run(make, shell=True, cwd=pictures, check=True, timeout=120)
        assert (pictures / "digit.png").is_file()

        curl = readme_command("curl -s --data-binary @digit.png")
        curl = curl.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        out = subprocess.run(
            curl, shell=True, cwd=pictures, check=True, timeout=60, capture_output=True, text=True
        )
        reply = json.loads(out.stdout)
        assert reply["model_name"] == "part-id-reader"
        score, index, label = _top(reply)
        assert (index, label) == ("7", "7") and float(score) > 0.5

        with Requester(broker.host, broker.port, subscribe=["plant/replies"]) as r:
            status = "headframe/mine-7/crusher-2/status"
            r.client.subscribe(status, qos=1)  # retained: "online" once the bridge is subscribed
            assert r.wait_for(
                lambda r: any(
                    json.loads(m.payload)["status"] == "online" for m in r.on_topic(status)
                ),
                timeout=30,
            )
            pub = readme_command("mosquitto_pub -V 5", having="-f digit.png")
            assert "content-type image/png" in pub
            pub = pub.replace("mosquitto_pub ", f"mosquitto_pub -p {broker.port} ", 1)
            subprocess.run(pub, shell=True, cwd=pictures, check=True, timeout=60)
            assert r.wait_for(lambda r: r.on_topic("plant/replies"), timeout=30)
            answer = json.loads(r.on_topic("plant/replies")[0].payload)
        assert answer["status"] == "ok", answer
        assert _top(answer["data"])[1:] == ["7", "7"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
