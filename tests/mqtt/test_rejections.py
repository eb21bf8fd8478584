"""Refused MQTT requests reach the operator's log: at INFO, with the error code and the
reason, one line per code and then a count, so a client repeating a bad request cannot
fill the journal (issue 15 item 5)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, site_settings
from tests.support.mqtt_client import Requester

pytestmark = pytest.mark.mqtt
PREFIX = "headframe/mine/n1"
INFER = f"{PREFIX}/models/part-id-reader/infer"


def _rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("runtime.mqtt") and "rejected a request" in r.getMessage()
    ]


def test_rejected_requests_are_logged_at_info_with_code_and_reason_rate_limited(
    broker: Mosquitto, linear: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="runtime.mqtt")
    with BridgeHarness(site_settings(broker), [linear], tmp_path / "state") as h:
        assert h.wait_connected() and h.bridge is not None
        with Requester(broker.host, broker.port) as r:
            for i in range(5):
                r.request(INFER, b"{not json", correlation=b"bad%d" % i)
            r.request(f"{PREFIX}/models/no-such-app/infer", b"{}", correlation=b"gone")
            assert r.wait_for(lambda r: len(r.by_corr) == 6)
            bad = [json.loads(r.by_corr[b"bad%d" % i][0].payload) for i in range(5)]
            gone = json.loads(r.by_corr[b"gone"][0].payload)
        code, reason = bad[0]["error"]["code"], bad[0]["error"]["message"]
        lines = [rec.getMessage() for rec in _rejections(caplog)]
        assert all(rec.levelno == logging.INFO for rec in _rejections(caplog))
        # Five of one code: one line, naming the topic, the code and the reason.
        mine = [m for m in lines if f": {code}: " in m]
        assert len(mine) == 1 and INFER in mine[0] and reason in mine[0], lines
        # Another code gets its own line at once.
        assert any(gone["error"]["code"] in m and gone["error"]["message"] in m for m in lines)
        # Once the period is over, the next one says how many were left out.
        h.bridge.replies.reject_log.every_s = 0.2
        time.sleep(0.3)
        with Requester(broker.host, broker.port) as r:
            r.request(INFER, b"{not json", correlation=b"again")
            assert r.wait_for(lambda r: r.by_corr.get(b"again"))
        later = [rec.getMessage() for rec in _rejections(caplog)][len(lines) :]
        assert len(later) == 1 and f"4 more {code} not logged" in later[0], later
        assert h.stats()[f"error_{code}"] == 6  # the figures count every one
