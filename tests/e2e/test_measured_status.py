"""What calibration measured is visible: /status (and the page), /metrics, MQTT info;
and a restart reads the cache instead of measuring again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.box.description import BoxDescription
from runtime.mqtt.wiring import info_from
from tests.support import daemon_proc
from tests.support.mosquitto import free_port

APP = "part-id-reader"


def _p50_metric(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {
        s.labels["variant"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "headframe_selected_p50_microseconds"
        for s in f.samples
        if s.labels.get("app") == APP
    }


@pytest.mark.slow
def test_status_metrics_show_the_measured_choice_and_a_restart_uses_the_cache(
    tmp_path: Path, demo_store: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = daemon_proc.write_config(tmp_path, demo_store, port)
    counts = []
    for _ in range(2):
        proc = daemon_proc.start(config)
        try:
            daemon_proc.wait_ready(url, proc)
            status = httpx.get(f"{url}/status").json()
            cal = status["calibration"][APP]
            counts.append((cal["from_cache"], len(cal["measurements"])))
            assert cal["at"] > 0 and cal["seconds"] <= cal["budget_s"] + 1
            served = next(a for a in status["applications"] if a["app"] == APP)
            measured = served["selection"]["chosen"]["measured"]
            assert measured["variant"] == served["variant"]
            assert _p50_metric(url) == {served["variant"]: measured["p50_us"]}
            page = httpx.get(f"{url}/").text
            assert "calibration" in page and f"p50 {measured['p50_us']} us" in page
        finally:
            proc.terminate()
            proc.wait(30)
    (cached_first, n_first), (cached_again, n_again) = counts
    assert cached_first == 0 and n_first > 0
    assert cached_again == n_again == n_first  # the restart measured nothing


def test_mqtt_info_carries_the_box_policy_and_what_was_measured() -> None:
    sections = {
        "box": lambda: {"objective": "balanced"},
        "calibration": lambda: {APP: {"at": 1.0}},
    }
    doc = info_from(BoxDescription, sections)()
    assert doc["box"]["objective"] == "balanced" and doc["calibration"][APP]["at"] == 1.0
