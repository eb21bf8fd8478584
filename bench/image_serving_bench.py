"""A 640x480 JPEG end to end against the already preprocessed tensor, over HTTP and MQTT,
on the demo model, in the same run of one `headframe serve` process.

Four paths, one request in flight each, interleaved by round so load on a shared box hits
all alike; medians over rounds beside the load average:

- ``http tensor``: the 64 preprocessed values as KServe binary tensor data (the baseline);
- ``http jpeg``: the JPEG as the body, ``Content-Type: image/jpeg``;
- ``mqtt tensor``: the 64 values as KServe JSON (MQTT carries no binary extension);
- ``mqtt jpeg``: the JPEG as the payload, MQTT v5 Content Type ``image/jpeg``.

Target (issue 16): the JPEG path's p50 within 1.5x of the tensor path's, on each transport.

    .venv/bin/python bench/image_serving_bench.py [--store DIR] [--requests 300] [--rounds 3]
                                                  [--json]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from runtime.catalog import Store  # noqa: E402
from runtime.demo import APP, build_demo_catalog  # noqa: E402
from runtime.images.preprocess import picture_to_tensor  # noqa: E402
from tests.support import daemon_proc  # noqa: E402
from tests.support.mosquitto import Mosquitto, free_port  # noqa: E402

TOPIC = f"headframe/bench/n1/models/{APP}/infer"


def frame_jpeg(pixels: np.ndarray, seed: int = 0) -> bytes:
    """One digit (64 values 0..16) as a 640x480 camera frame: ink on paper, noise, JPEG 90."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paper = 255.0 - pixels.reshape(8, 8) * (255.0 / 16)
    frame = np.kron(paper, np.ones((60, 80))) + rng.normal(0, 6, (480, 640))
    buf = io.BytesIO()
    Image.fromarray(np.clip(frame, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def tensor_binary(values: np.ndarray) -> tuple[bytes, int]:
    header = orjson.dumps(
        {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                     "parameters": {"binary_data_size": 256}}]}
    )  # fmt: skip
    return header + values.astype("<f4").tobytes(), len(header)


def tensor_json(values: np.ndarray) -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                     "data": values.tolist()}]}
    )  # fmt: skip


class Http:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def call(self, body: bytes, headers: dict[str, str]) -> None:
        self.conn.request("POST", f"/v2/models/{APP}/infer", body, headers)
        r = self.conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")


class Mqtt:
    def __init__(self, port: int) -> None:
        self.got = threading.Event()
        self.reply = b""
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id="image-bench",
                        protocol=MQTTProtocolVersion.MQTTv5)  # fmt: skip
        c.on_message = self._on_message
        c.on_socket_open = lambda client, u, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        c.connect("127.0.0.1", port)
        c.subscribe("bench/replies", qos=1)
        c.loop_start()
        self.client = c
        time.sleep(0.5)

    def _on_message(self, client: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        self.reply = msg.payload
        self.got.set()

    def call(self, body: bytes, content_type: str | None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "bench/replies"
        if content_type:
            props.ContentType = content_type
        self.got.clear()
        self.client.publish(TOPIC, body, qos=1, properties=props)
        if not self.got.wait(30):
            raise RuntimeError("no MQTT reply")
        if b'"status":"ok"' not in self.reply:
            raise RuntimeError(self.reply[:200])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(store: Path, work: Path, n: int, rounds: int) -> dict[str, Any]:
    package = Store(store).load(APP)
    contract = package.meta.images["pixels"]  # type: ignore[index]
    with np.load(package.path / "golden.npz") as g:
        digits = g["pixels"][:n]
    jpegs = [frame_jpeg(d, i) for i, d in enumerate(digits)]
    tensors = [picture_to_tensor(j, contract) for j in jpegs]  # what the JPEG becomes
    broker = Mosquitto(work / "broker", extra="set_tcp_nodelay true").start()
    port = free_port()
    mqtt = f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nsite = "bench"\nnode = "n1"\n'
    proc = daemon_proc.start(daemon_proc.write_config(work, store, port, mqtt))
    samples: dict[str, list[dict[str, float]]] = {}
    try:
        daemon_proc.wait_ready(f"http://127.0.0.1:{port}", proc)
        web, bus = Http(port), Mqtt(broker.port)
        paths = {
            "http tensor": [
                (lambda b=b, h=h: web.call(b, {"Inference-Header-Content-Length": str(h),
                                               "Content-Type": "application/octet-stream"}))
                for b, h in map(tensor_binary, tensors)
            ],
            "http jpeg": [
                (lambda j=j: web.call(j, {"Content-Type": "image/jpeg"})) for j in jpegs
            ],
            "mqtt tensor": [(lambda b=b: bus.call(b, None)) for b in map(tensor_json, tensors)],
            "mqtt jpeg": [(lambda j=j: bus.call(j, "image/jpeg")) for j in jpegs],
        }  # fmt: skip
        for calls in paths.values():  # warm-up
            for call in calls[:20]:
                call()
        for _ in range(rounds):
            for name, calls in paths.items():
                times = []
                start = time.perf_counter()
                for call in calls:
                    t0 = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - t0)
                elapsed = time.perf_counter() - start
                samples.setdefault(name, []).append(
                    {"p50_ms": statistics.median(times) * 1000, "per_s": len(calls) / elapsed,
                     "loadavg_1m": os.getloadavg()[0]}
                )  # fmt: skip
        bus.close()
    finally:
        proc.terminate()
        proc.wait(30)
        broker.stop()
    out: dict[str, Any] = {"requests": n, "rounds": rounds, "jpeg_bytes": len(jpegs[0])}
    for name, rs in samples.items():
        out[name] = {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]}
    for transport in ("http", "mqtt"):
        ratio = out[f"{transport} jpeg"]["p50_ms"] / out[f"{transport} tensor"]["p50_ms"]
        out[f"{transport}_p50_ratio"] = round(ratio, 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="a store with the demo (default: build one)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="image-bench-"))
    try:
        store = args.store or work / "store"
        if args.store is None:
            build_demo_catalog(store)
        out = run(store, work, args.requests, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"640x480 JPEG of {out['jpeg_bytes']} bytes, {args.requests} requests x {args.rounds}")
    for name in ("http tensor", "http jpeg", "mqtt tensor", "mqtt jpeg"):
        r = out[name]
        print(
            f"{name:12} p50 {r['p50_ms']:8.3f} ms  {r['per_s']:8.1f} req/s  load {r['loadavg_1m']}"
        )
    print(f"p50 JPEG / tensor: http {out['http_p50_ratio']}, mqtt {out['mqtt_p50_ratio']} "
          "(target <= 1.5)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
