"""Nothing lost: pools, broker restarts and kills, a killed daemon, a full buffer."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.catalog import ModelPackage
from runtime.config import MqttSettings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_bridge import BridgeHarness, infer_body, site_settings, write_slow_package
from tests.support.mqtt_client import Requester
from tests.support.wait import holds_within

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
INFER = "headframe/mine/n1/models/part-id-reader/infer"


def _all_replied_identically(r: Requester, wanted: set[bytes]) -> bool:
    for corr in wanted:
        msgs = r.by_corr.get(corr)
        if not msgs or any(m.payload != msgs[0].payload for m in msgs):
            return False
    return True


def test_pool_of_two_answers_each_request_exactly_once(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    pool = "headframe/mine/pool/part-id-reader/infer"
    a, b = (
        BridgeHarness(
            site_settings(broker, node=node, pool_group="line-a"), [linear], tmp_path / node
        )
        for node in ("n1", "n2")
    )
    with a, b, Requester(broker.host, broker.port) as r:
        assert a.wait_connected() and b.wait_connected()
        time.sleep(0.3)  # both shared subscriptions in place
        n = 1000
        for i in range(n):
            r.request(pool, infer_body(seed=i % 50), correlation=b"%d" % i)
        assert r.wait_for(lambda r: len(r.by_corr) == n, timeout=60)
        time.sleep(0.5)  # a second answer to anything would arrive by now
        counts = [len(r.by_corr[b"%d" % i]) for i in range(n)]
        served = [h.stats()["replies"] for h in (a, b)]
    assert counts == [1] * n
    assert sum(served) == n and min(served) > 0, served


def test_broker_sigterm_and_restart_while_1000_requests_flow(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    n = 1000
    with BridgeHarness(site_settings(broker), [linear], tmp_path / "s") as h:
        assert h.wait_connected()
        with Requester(broker.host, broker.port, client_id="scada-1", persistent=True) as r:

            def flow() -> None:
                for i in range(n):
                    r.request(INFER, infer_body(seed=i % 50), correlation=b"%d" % i)
                    time.sleep(0.002)

            sender = threading.Thread(target=flow)
            sender.start()
            time.sleep(0.6)
            broker.stop()  # SIGTERM: the broker saves its sessions
            time.sleep(0.5)
            broker.start()
            sender.join()
            assert r.wait_for(lambda r: len(r.accepted()) == n, timeout=60)
            accepted = r.accepted()
            assert r.wait_for(lambda r: _all_replied_identically(r, accepted), timeout=60)
        # Repeats answered from the cache may still await their PUBACK: none stays behind.
        deadline = time.monotonic() + 10
        while h.stats()["buffer"]["entries"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h.stats()["buffer"]["entries"] == 0, h.stats()


def test_broker_sigkill_back_within_2s_and_unacked_replies_resent(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path
) -> None:
    with BridgeHarness(site_settings(broker), [linear], tmp_path / "s") as h:
        assert h.wait_connected()
        with Requester(broker.host, broker.port) as r:
            for i in range(300):
                r.request(INFER, infer_body(seed=i % 50), correlation=b"%d" % i)
            assert r.wait_for(lambda r: len(r.by_corr) >= 50, timeout=30)
        broker.kill()
        time.sleep(0.3)
        broker.start()
        back = time.monotonic()
        with Requester(broker.host, broker.port) as r2:
            # Without a saved session the broker drops requests nobody subscribes to yet:
            # ask every 100 ms until the bridge answers.
            answered = None
            for i in range(50):
                r2.request(INFER, infer_body(), correlation=b"fresh-%d" % i)
                if r2.wait_for(lambda r: any(k.startswith(b"fresh") for k in r.by_corr), 0.1):
                    answered = time.monotonic() - back
                    break
            assert answered is not None, h.stats()
        # Every reply the bridge made was acknowledged in the end: resent where needed.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and h.stats()["buffer"]["entries"]:
            time.sleep(0.1)
        stats = h.stats()
    assert answered < 2.0 + 0.5, f"serving again {answered:.2f} s after the broker returned"
    assert stats["buffer"]["entries"] == 0 and stats["inflight"] == 0
    assert stats["buffer"]["written"] == stats["buffer"]["acked"]
    assert stats["buffer"]["dropped"] == 0


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        return int(c.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _spawn(pkg: ModelPackage, state: Path, s: MqttSettings, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.mqtt_bridge_proc", str(pkg.path), str(state),
         s.model_dump_json()],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log.open("ab"),
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", log.read_text()[-3000:]
    return proc


def test_daemon_killed_with_results_buffered_delivers_them_after_restart(
    broker: Mosquitto, tmp_path: Path
) -> None:
    pkg = write_slow_package(tmp_path / "store", app="part-id-reader")
    state = tmp_path / "state"
    db = state / "mqtt-buffer.sqlite"
    s = site_settings(broker)
    log = tmp_path / "bridge.log"
    status = "headframe/mine/n1/status"
    n = 30
    with Requester(
        broker.host, broker.port, client_id="scada-2", persistent=True, subscribe=[status]
    ) as r:
        proc = _spawn(pkg, state, s, log)
        try:
            assert r.wait_for(
                lambda r: any(
                    json.loads(m.payload)["status"] == "online" for m in r.on_topic(status)
                )
            )
            for i in range(n):
                r.request(INFER, infer_body(seed=i), correlation=b"%d" % i)
            assert r.wait_for(lambda r: len(r.by_corr) >= 1, timeout=30)
            broker.stop()  # results now go to the buffer
            deadline = time.monotonic() + 60
            last, stable_since = -1, time.monotonic()
            while time.monotonic() < deadline:
                rows = _rows(db)
                if rows != last:
                    last, stable_since = rows, time.monotonic()
                elif rows and time.monotonic() - stable_since > 1.5:
                    break
                time.sleep(0.1)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            buffered = _rows(db)
            assert buffered > 0, "no results were buffered while the broker was away"

            broker.start()
            proc = _spawn(pkg, state, s, log)
            wanted = {b"%d" % i for i in range(n)}
            assert r.wait_for(lambda r: _all_replied_identically(r, wanted), timeout=60), (
                sorted(wanted - set(r.by_corr)),
                log.read_text()[-3000:],
            )
            deadline = time.monotonic() + 10
            while _rows(db) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _rows(db) == 0
            # Killed while connected: the broker publishes the Last Will.
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            assert r.wait_for(
                lambda r: json.loads(r.on_topic(status)[-1].payload)["status"] == "offline"
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.mark.parametrize("policy", ["drop_oldest", "reject_new"])
def test_buffer_full_under_each_policy(broker: Mosquitto, tmp_path: Path, policy: str) -> None:
    pkg = write_slow_package(tmp_path / "store", app="part-id-reader", rounds=48)
    s = site_settings(broker, buffer={"max_bytes": 4096, "policy": policy})
    n = 40
    with BridgeHarness(s, [pkg], tmp_path / "s") as h, Requester(broker.host, broker.port) as r:
        assert h.wait_connected()
        for i in range(n):
            r.request(INFER, infer_body(seed=i), correlation=b"%d" % i)
        deadline = time.monotonic() + 30
        while h.stats().get("received", 0) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        broker.stop()  # the rest of the replies are computed with the broker away
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st = h.stats()
            if st.get("replies", 0) + st.get("replies_dropped", 0) >= n:
                break
            time.sleep(0.1)
        st = h.stats()
        assert h.bridge is not None and h.bridge.buffer is not None
        kept = h.run(lambda: h.bridge.buffer.pending(limit=1000))  # type: ignore[union-attr]
    kept_ids = [int(e.properties["correlation_data"]) for e in kept]
    assert st["buffer"]["bytes"] <= 4096 and kept_ids
    assert kept_ids == sorted(kept_ids)
    if policy == "drop_oldest":
        assert st["buffer"]["dropped_full"] > 0 and st["buffer"]["rejected"] == 0
        assert kept_ids[-1] == n - 1  # the newest survive
    else:
        assert st["buffer"]["rejected"] > 0 and st["buffer"]["dropped_full"] == 0
        assert st["replies_dropped"] == st["buffer"]["rejected"]
        assert kept_ids[-1] < n - 1  # the oldest survive, the newest were refused


@pytest.mark.slow
def test_a_replay_that_fails_is_retried_and_delivers_in_order(
    broker: Mosquitto, linear: ModelPackage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    topic = "scada/results"
    with BridgeHarness(site_settings(broker), [linear], tmp_path / "s") as h:
        assert h.wait_connected()
        bridge = h.bridge
        assert bridge is not None and bridge.outbox is not None and bridge.buffer is not None
        outbox, buffer = bridge.outbox, bridge.buffer
        broker.stop()
        deadline = time.monotonic() + 5
        while h.run(lambda: outbox._online) and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(5):  # replies made while the broker is away go to the buffer
            h.run(lambda i=i: outbox.send(topic, b"r%d" % i, qos=1))
        # The buffer's database breaks (say the disk hiccups) just as the broker returns.
        h.run(lambda: buffer._db.execute("ALTER TABLE outbox RENAME TO broken"))
        broker.start()
        with Requester(broker.host, broker.port, subscribe=[topic]) as r:
            assert r.wait_for(lambda r: "replaying the buffer failed" in caplog.text, 10)
            assert r.on_topic(topic) == []
            h.run(lambda: buffer._db.execute("ALTER TABLE broken RENAME TO outbox"))
            assert r.wait_for(lambda r: len(r.on_topic(topic)) == 5, timeout=15)
            assert [m.payload for m in r.on_topic(topic)] == [b"r%d" % i for i in range(5)]


def _saved_after(db: Path, moment: float, timeout: float = 15.0) -> bool:
    """Mosquitto has written its database (autosave) since ``moment``."""
    return holds_within(lambda: db.exists() and db.stat().st_mtime > moment, timeout)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_broker_restart_with_400_requests_queued_answers_each_once_and_never_busy(
    make_broker: Any, tmp_path: Path, sig: int
) -> None:
    # The outside review's fault run: a backlog of QoS 1 requests in the box's persistent
    # session, delivered all at once, and a broker restart while it drains. A small queue
    # and a model of milliseconds a row keep most of the 400 waiting across the restart.
    broker = make_broker("restart", extra="autosave_interval 1")
    broker.start()
    pkg = write_slow_package(tmp_path / "store", app="part-id-reader", rounds=96)
    settings = site_settings(broker, queue_size=16)
    n = 400
    with Requester(broker.host, broker.port, client_id="scada-3", persistent=True) as r:
        with BridgeHarness(settings, [pkg], tmp_path / "s") as h:
            assert h.wait_connected()  # the box's session and subscriptions at the broker
        # The box is away: every request waits in its session.
        for i in range(n):
            r.request(INFER, infer_body(seed=i), correlation=b"%d" % i)
        assert r.wait_for(lambda r: len(r.accepted()) == n, timeout=60)
        # A SIGKILL loses what changed since the broker's last autosave: let it save the
        # backlog first (the broker's durability, not the box's, is not under test).
        assert _saved_after(broker.data / "mosquitto.db", time.time())
        with BridgeHarness(settings, [pkg], tmp_path / "s") as h:
            assert h.service is not None
            assert r.wait_for(lambda r: len(r.by_corr) >= 20, timeout=60)
            early = [json.loads(m[0].payload) for m in list(r.by_corr.values())]
            assert all(x["status"] == "ok" for x in early), [x for x in early if "error" in x][:1]
            assert len(early) < n / 2, "the backlog drained before the restart"
            broker.stop(sig)
            time.sleep(0.3)
            broker.start()
            wanted = {b"%d" % i for i in range(n)}
            assert r.wait_for(lambda r: _all_replied_identically(r, wanted), timeout=120), (
                len(r.by_corr),
                h.stats(),
            )
            replies = {c: json.loads(r.by_corr[c][0].payload) for c in wanted}
            stats = h.stats()
            computed = h.service.stats.snapshot()["part-id-reader"]["requests"]
    assert {reply["status"] for reply in replies.values()} == {"ok"}, stats
    assert stats.get("busy", 0) == 0
    if sig == signal.SIGTERM:  # the broker kept its sessions exactly: nothing runs twice
        assert computed == n, stats
