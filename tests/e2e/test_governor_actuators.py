"""The governor driving the actuators (runtime/service/load_shed.py, the service's park) in a
real daemon: hard pressure with no lighter rung sheds HTTP load with 429 + Retry-After
until the pressure is gone; an idle GGUF text app is unloaded, stays ready, and its next
request reloads it and says how long it waited."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.governor_daemon import APP, GOOD, governor_section, run_daemon
from tests.support.prereq import need_module
from tests.support.pressure_host import PressureHost


@pytest.mark.slow
def test_hard_pressure_with_no_lighter_rung_sheds_load_until_it_is_gone(
    tmp_path: Path, demo_store: Path
) -> None:
    host = PressureHost(tmp_path / "host")
    # objective "smallest" and no floor: the demo's int8 variant, its lightest as well.
    extra = f'[[applications]]\nname = "{APP}"\nobjective = "smallest"\n' + governor_section(
        host.root, "retry_after_s = 7\n"
    )
    with run_daemon(tmp_path, demo_store, extra) as d:
        first = d.serving()
        url = f"{d.url}/v2/models/{APP}/infer"
        assert httpx.post(url, json=GOOD).status_code == 200
        host.memory(3.0)
        d.wait(lambda: httpx.post(url, json=GOOD).status_code == 429, "shedding")
        r = httpx.post(url, json=GOOD)
        assert r.status_code == 429 and r.headers["retry-after"] == "7"
        assert "memory_available_pct 3.0%" in r.text
        gov = d.status()["governor"]
        assert gov["shedding"] is True and gov["state"] == "shedding"
        assert gov["swaps"] == {"ok": 0, "failed": 0} and d.serving() == first
        host.memory(50.0)
        d.wait(lambda: httpx.post(url, json=GOOD).status_code == 200, "serving again")
        gov = d.status()["governor"]
        assert gov["shedding"] is False and gov["counts"]["stop_shed"] == 1
        assert "headframe_governor_shedding 0.0" in httpx.get(f"{d.url}/metrics").text


@pytest.mark.slow
def test_an_idle_text_app_is_unloaded_and_its_next_request_reloads_it(tmp_path: Path) -> None:
    need_module("llama_cpp")
    from tests.support.text_models import write_text_package

    store = tmp_path / "store"
    write_text_package(store)
    host = PressureHost(tmp_path / "host")
    extra = (
        '[calibration]\nenabled = false\n[[applications]]\nname = "assistant"\n'
        + governor_section(host.root, "idle_unload_s = 1.0\n")
    )
    chat = {"model": "assistant", "messages": [{"role": "user", "content": "belt status"}],
            "max_tokens": 2, "seed": 1}  # fmt: skip

    def unloads() -> list[dict[str, object]]:
        recent = d.status()["governor"]["recent"]
        return [e for e in recent if e["action"] == "idle_unload"]

    with run_daemon(tmp_path, store, extra) as d:
        d.wait(lambda: len(unloads()) == 1, "the idle unload", 30)
        assert unloads()[0]["app"] == "assistant"
        assert httpx.get(f"{d.url}/v2/health/ready").status_code == 200  # still ready
        r = httpx.post(f"{d.url}/v1/chat/completions", json=chat, timeout=60)
        assert r.status_code == 200, r.text
        assert int(r.headers["x-headframe-reload-ms"]) >= 0  # the first request waited
        again = httpx.post(f"{d.url}/v1/chat/completions", json=chat, timeout=60)
        assert "x-headframe-reload-ms" not in again.headers  # loaded: no wait now
        d.wait(lambda: len(unloads()) == 2, "the second idle unload", 30)
