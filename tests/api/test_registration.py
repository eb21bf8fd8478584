"""The daemon's explicit registrations (status sections, metrics sources, the box's
description) as a scraper and a browser see them, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from runtime.api.app import create_app
from runtime.api.context import ServerContext
from runtime.box.description import BoxDescription
from runtime.catalog import Store
from runtime.config import Settings
from runtime.service import InferenceService
from tests.support.http_server import running_server


def _broken() -> list[Metric]:
    raise RuntimeError("the source's own bug")


def test_sources_and_sections_show_and_a_broken_one_does_not_take_the_page_down(
    store: Path, loader: Any
) -> None:
    context = ServerContext(lambda: BoxDescription(hostname="crusher-7"))
    hits = {"n": 0}

    def belts() -> list[Metric]:
        hits["n"] += 1
        return [GaugeMetricFamily("headframe_belts_running", "Belts running.", value=hits["n"])]

    def section_boom() -> Any:
        raise RuntimeError("section bug")

    context.add_metrics("broken", _broken)
    context.add_metrics("belts", belts)
    context.add_section("boom", section_boom)

    async def build() -> tuple[Any, InferenceService]:
        service = InferenceService(loader)
        await service.add(Store(store).load("part-id-reader"))
        app = create_app(service, settings=Settings(demo=False), context=context)
        # Registered after the app was built (the daemon adds fleet and MQTT later).
        context.add_section("belts", lambda: {"running": 3})
        return app, service

    async def close(service: InferenceService) -> None:
        await service.close()

    with running_server(build, close=close) as h, httpx.Client(base_url=h.url) as http:
        first = http.get("/metrics")
        second = http.get("/metrics")
        doc = http.get("/status").json()
        page = http.get("/").text
    assert first.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(second.text)}
    assert families["headframe_belts_running"].samples[0].value == 2  # read at each scrape
    assert "process_start_time_seconds" in families and "headframe_uptime_seconds" in families
    assert doc["host"]["hostname"] == "crusher-7" and doc["profile"] is None
    assert doc["belts"] == {"running": 3} and "section bug" in doc["boom"]["error"]
    assert "crusher-7" in page and "belts" in page


def test_names_register_once_and_the_box_description_is_read_live() -> None:
    described = [BoxDescription(hostname="a")]
    context = ServerContext(lambda: described[-1])
    context.add_section("fleet", dict)
    with pytest.raises(ValueError, match="fleet"):
        context.add_section("fleet", dict)
    with pytest.raises(ValueError, match="applications"):
        context.add_section("applications", dict)  # would hide the document's own key
    context.add_metrics("fleet", list)
    with pytest.raises(ValueError, match="fleet"):
        context.add_metrics("fleet", list)
    assert context.box.hostname == "a"
    described.append(BoxDescription(hostname="c"))  # SIGHUP's new probe
    assert context.box.hostname == "c"
    assert ServerContext().box.report is None  # before any probe: the host name only
