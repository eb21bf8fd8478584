"""MQTT request/response round trip through a real Mosquitto on loopback: the headframe
bridge (real service, demo model) against a bare paho responder that runs the same
onnxruntime session inline on its network thread, measured in the same run. A second
baseline does the bare responder's work on a worker thread that paho's thread hands each
message to, as house rule 6 makes headframe do: ``threaded_ratio`` compares with that.

    .venv/bin/python bench/mqtt_bench.py [--store DIR] [--requests N] [--rounds R] [--pin CPU]
                                         [--in-flight K] [--model demo|1ms] [--json]

The bridge runs twice: on the fast path (paho 2.2's private hooks, runtime.mqtt.paho_compat)
and on paho's own code paths (``mqtt.paho_fast_path = false``); ``fast_path_ratio`` is the
first's throughput over the second's, the evidence for keeping the overrides. ``--model
1ms``: a real ONNX model of about a millisecond a request (its measured time is printed),
where a per-message saving matters less than on the tiny demo model.

QoS 1 both ways, 8 requests in flight (``--in-flight 1``: the latency floor, each request
sent when the last reply arrived), Response Topic + Correlation Data, KServe v2 JSON
bodies, TCP_NODELAY on every client and on the broker (``set_tcp_nodelay``). Each responder
runs in its own process, as the daemon does; the load generator in this one. Rounds
alternate between the two responders so a burst of load on a shared box hits both alike;
figures are medians over rounds.
Targets (issue 5): throughput >= 70 % of the bare responder, p50 < 3 ms. At one in flight
(issue 14): headframe's p50 within 0.3 ms of the threaded bare responder's. The 1-minute
load average is printed beside every figure: the machine must be otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from bench.proc_cpu import cpu_seconds  # noqa: E402
from runtime.catalog import ModelPackage, Store  # noqa: E402
from runtime.config import MqttSettings  # noqa: E402
from runtime.demo import APP, build_demo_catalog  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.mqtt_bridge import write_slow_package  # noqa: E402

IN_FLIGHT = 8
BARE_TOPIC = "bench/bare/infer"
THREADED_TOPIC = "bench/bare-threaded/infer"
BROKER_EXTRA = "set_tcp_nodelay true"
ROUNDS_1MS = 8  # 1024x1024 products per row: about a millisecond on one x86 core


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _client(name: str) -> paho.Client:
    c = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5
    )
    c.on_socket_open = _nodelay
    c.max_inflight_messages_set(64)
    return c


class BareResponder:
    """The baseline: decode, run onnxruntime inline on paho's thread, encode, publish.

    ``threaded``: the second baseline, the same work on one worker thread that paho's
    thread hands each message to, as house rule 6 makes headframe do (no storing, no
    checks): the cost of the hand-off alone, in the same run."""

    def __init__(self, port: int, model_file: Path, threaded: bool = False) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_file), opts, ["CPUExecutionProvider"])
        self.client = _client("bare-threaded-responder" if threaded else "bare-responder")
        self.jobs: queue.SimpleQueue[paho.MQTTMessage] = queue.SimpleQueue()
        if threaded:
            threading.Thread(target=self._work, daemon=True).start()
            self.client.on_message = lambda c, u, msg: self.jobs.put(msg)
        else:
            self.client.on_message = lambda c, u, msg: self._answer(msg)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(THREADED_TOPIC if threaded else BARE_TOPIC, qos=1)
        self.client.loop_start()

    def _work(self) -> None:
        while True:
            self._answer(self.jobs.get())

    def _answer(self, msg: paho.MQTTMessage) -> None:
        doc = orjson.loads(msg.payload)
        spec = doc["inputs"][0]
        x = np.asarray(spec["data"], np.float32).reshape(spec["shape"])
        (probs,) = self.session.run(None, {"pixels": x})
        body = orjson.dumps(
            {
                "status": "ok",
                "data": {
                    "model_name": APP,
                    "outputs": [
                        {"name": "probabilities", "datatype": "FP32",
                         "shape": list(probs.shape), "data": probs.ravel().tolist()}
                    ],
                },
            }
        )  # fmt: skip
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = msg.properties.CorrelationData
        self.client.publish(msg.properties.ResponseTopic, body, qos=1, properties=props)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Load:
    """``in_flight`` requests in flight; records each round trip."""

    def __init__(self, port: int, status: str, in_flight: int = IN_FLIGHT) -> None:
        self.in_flight = in_flight
        self.online = threading.Event()
        self.status = status
        self.client = _client("bench-requester")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("bench/replies", 1), (status, 1)])
        self.client.loop_start()
        if not self.online.wait(30):
            raise RuntimeError("the bridge did not come online")
        self.slots = threading.Semaphore(in_flight)
        self.sent: dict[int, float] = {}
        self.rtts: list[float] = []
        self.errors = 0
        self.done = threading.Event()
        self.expected = 0
        time.sleep(0.3)

    def _on_message(self, client: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == self.status:
            if orjson.loads(msg.payload)["status"] == "online":
                self.online.set()
            return
        i = int(msg.properties.CorrelationData)
        self.rtts.append(time.perf_counter() - self.sent.pop(i))
        if orjson.loads(msg.payload)["status"] != "ok":
            self.errors += 1
        self.slots.release()
        if len(self.rtts) == self.expected:
            self.done.set()

    def run(self, topic: str, bodies: list[bytes]) -> dict[str, float]:
        self.rtts, self.errors, self.expected = [], 0, len(bodies)
        self.done.clear()
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            self.slots.acquire()
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = "bench/replies"
            props.CorrelationData = b"%d" % i
            self.sent[i] = time.perf_counter()
            self.client.publish(topic, body, qos=1, properties=props)
        if not self.done.wait(120):
            raise RuntimeError(f"only {len(self.rtts)} of {len(bodies)} replies arrived")
        elapsed = time.perf_counter() - start
        for _ in range(self.in_flight):  # all slots back for the next run
            self.slots.acquire()
        for _ in range(self.in_flight):
            self.slots.release()
        rtts = sorted(self.rtts)
        return {
            "throughput_per_s": len(bodies) / elapsed,
            "p50_ms": rtts[len(rtts) // 2] * 1000,
            "p95_ms": rtts[int(len(rtts) * 0.95)] * 1000,
            "errors": self.errors,
            "load_1m": os.getloadavg()[0],
        }

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _bodies(n: int, golden: Path) -> list[bytes]:
    if golden.exists():
        pixels = np.load(golden)["pixels"].astype(np.float32)
    else:  # the 1 ms model has no golden set: its inputs' values do not change its time
        pixels = np.random.default_rng(0).integers(0, 17, (64, 64)).astype(np.float32)
    return [
        orjson.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                                  "data": pixels[i % len(pixels)].tolist()}]})
        for i in range(n)
    ]  # fmt: skip


def _spawn(args: list[str], cpus: set[int] | None = None) -> subprocess.Popen[bytes]:
    # Keep a PYTHONPATH the caller set (packages carried beside the system's, say).
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    # Set in the child before it starts any thread, so all its threads keep to ``cpus``.
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, preexec_fn=pin
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"{args[:2]} did not start")
    return proc


def _strace(procs: list[subprocess.Popen[bytes]], names: tuple[str, ...]) -> list[Any]:
    """With MQTT_BENCH_STRACE=DIR: ``strace -c -f`` on each responder through the measured
    rounds, into DIR/<name>.strace (counts by system call; strace slows everything down, so
    read the counts, never the times)."""
    out = os.environ.get("MQTT_BENCH_STRACE")
    if not out:
        return []
    tracers = []
    for proc, name in zip(procs, names, strict=True):
        cmd = ["strace", "-c", "-f", "-p", str(proc.pid), "-o", f"{out}/{name}.strace"]
        tracers.append(subprocess.Popen(cmd, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # attached to every thread
    return tracers


def _strace_done(tracers: list[Any]) -> None:
    for t in tracers:
        t.send_signal(signal.SIGINT)  # detach and write the summary
        t.wait(30)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench(
    package: ModelPackage,
    work: Path,
    n: int,
    rounds: int,
    pin: int | None = None,
    in_flight: int = IN_FLIGHT,
) -> dict[str, Any]:
    """Each responder in its own process (as the daemon is), the load in this one. ``pin``:
    both responders on that CPU, this process and the broker on the others."""
    variant = next(v for v in package.variants if v.meta.format == "onnx")
    responder_cpus = {pin} if pin is not None else None
    if pin is not None:
        others = os.sched_getaffinity(0) - {pin}
        if not others:
            raise SystemExit("--pin needs at least two CPUs")
        os.sched_setaffinity(0, others)  # the load generator (and its paho thread, made later)
    broker = Mosquitto(work / "broker", extra=BROKER_EXTRA).start()
    if pin is not None and broker.proc is not None:
        os.sched_setaffinity(broker.proc.pid, others)
    settings = MqttSettings(host=broker.host, port=broker.port, site="bench", node="n1")
    topic = f"headframe/bench/n1/models/{APP}/infer"
    bodies = _bodies(n, package.path / "golden.npz")
    procs = []
    results: dict[str, list[dict[str, float]]] = {
        "bare": [], "bare_threaded": [], "headframe": [], "headframe_paho_own": []
    }  # fmt: skip
    own_paths = settings.model_copy(update={"node": "n2", "paho_fast_path": False})
    own_topic = f"headframe/bench/n2/models/{APP}/infer"
    try:
        bare = [str(HERE / "mqtt_bench.py"), "--bare-responder", str(broker.port),
                str(variant.entrypoint)]  # fmt: skip
        procs.append(_spawn(bare, responder_cpus))
        procs.append(_spawn([*bare, "--threaded"], responder_cpus))
        bridge = ["-m", "tests.support.mqtt_bridge_proc", str(package.path), str(work / "state"),
                  settings.model_dump_json(), variant.id]  # fmt: skip
        if os.environ.get("MQTT_BENCH_PROFILE"):  # a cProfile of the bridge's event loop
            bridge = ["-m", "cProfile", "-o", os.environ["MQTT_BENCH_PROFILE"], *bridge]
        procs.append(_spawn(bridge, responder_cpus))
        plain = ["-m", "tests.support.mqtt_bridge_proc", str(package.path), str(work / "state2"),
                 own_paths.model_dump_json(), variant.id]  # fmt: skip
        procs.append(_spawn(plain, responder_cpus))
        load = Load(broker.port, status="headframe/bench/n1/status", in_flight=in_flight)
        try:
            for path in (BARE_TOPIC, THREADED_TOPIC, topic, own_topic):  # warm every path
                load.run(path, bodies[:200])
            tracers = _strace(procs, ("bare", "bare_threaded", "headframe", "headframe_paho_own"))
            paths = [("bare", procs[0].pid, BARE_TOPIC),
                     ("bare_threaded", procs[1].pid, THREADED_TOPIC),
                     ("headframe", procs[2].pid, topic),
                     ("headframe_paho_own", procs[3].pid, own_topic)]  # fmt: skip
            for _ in range(rounds):
                for name, pid, path in paths:
                    cpu = cpu_seconds(pid)
                    r = load.run(path, bodies)
                    r["cpu_us_per_request"] = (cpu_seconds(pid) - cpu) / len(bodies) * 1e6
                    results[name].append(r)
            _strace_done(tracers)
        finally:
            load.close()
    finally:
        for p in procs:
            _stop(p)
        broker.stop()

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    out: dict[str, Any] = {
        "variant": variant.id, "requests": n, "rounds": rounds, "pin": pin, "in_flight": in_flight,
        "model_ms": round(_model_ms(variant.entrypoint), 3),
    }  # fmt: skip
    for name in results:
        keys = ("throughput_per_s", "p50_ms", "p95_ms", "cpu_us_per_request", "load_1m")
        out[name] = {k: round(med(name, k), 3) for k in keys}
        out[name]["errors"] = sum(r["errors"] for r in results[name])
    out["throughput_ratio"] = round(
        out["headframe"]["throughput_per_s"] / out["bare"]["throughput_per_s"], 3
    )
    out["threaded_ratio"] = round(
        out["headframe"]["throughput_per_s"] / out["bare_threaded"]["throughput_per_s"], 3
    )
    # Issue 15: the private-API fast path against paho's own code paths, same run.
    out["fast_path_ratio"] = round(
        out["headframe"]["throughput_per_s"] / out["headframe_paho_own"]["throughput_per_s"], 3
    )
    out["fast_path_p50_saving_ms"] = round(
        out["headframe_paho_own"]["p50_ms"] - out["headframe"]["p50_ms"], 3
    )
    # The latency floor (issue 14): what headframe adds to the threaded bare responder.
    out["p50_over_threaded_ms"] = round(
        out["headframe"]["p50_ms"] - out["bare_threaded"]["p50_ms"], 3
    )
    return out


def _model_ms(model_file: Path, runs: int = 200) -> float:
    """The model's own time per one-row request, on one thread: the median of ``runs``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_file), opts, ["CPUExecutionProvider"])
    x = np.zeros((1, 64), np.float32)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"pixels": x})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def serve_bare(port: int, model_file: Path, threaded: bool) -> None:
    responder = BareResponder(port, model_file, threaded)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    print("ready", flush=True)
    stop.wait()
    responder.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, help="a built demo store (default: build one)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--model",
        choices=("demo", "1ms"),
        default="demo",
        help="the demo model (tens of microseconds) or a real ONNX model of about 1 ms",
    )
    ap.add_argument(
        "--in-flight",
        type=int,
        default=IN_FLIGHT,
        metavar="K",
        help="requests in flight (1: the latency floor, target within 0.3 ms of the threaded "
        "bare responder)",
    )
    ap.add_argument(
        "--pin",
        type=int,
        metavar="CPU",
        help="run both responders on this CPU, the load generator and broker on the others",
    )
    ap.add_argument("--bare-responder", nargs=2, metavar=("PORT", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--threaded", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_responder:
        serve_bare(int(args.bare_responder[0]), Path(args.bare_responder[1]), args.threaded)
        return 0
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp:
        work = Path(tmp)
        store = args.store or work / "store"
        if args.model == "1ms":
            package = write_slow_package(work / "store-1ms", app=APP, rounds=ROUNDS_1MS)
        else:
            if args.store is None:
                build_demo_catalog(store)
            package = Store(store).load(APP)
        out = bench(package, work, args.requests, args.rounds, args.pin, args.in_flight)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        b, t, h, o = (out["bare"], out["bare_threaded"], out["headframe"],
                      out["headframe_paho_own"])  # fmt: skip
        where = f", responders on CPU {args.pin}" if args.pin is not None else ""
        print(f"variant {out['variant']}, {out['requests']} requests x {out['rounds']} rounds, "
              f"QoS 1, {args.in_flight} in flight{where}; the model alone "
              f"{out['model_ms']:.3f} ms a request")  # fmt: skip
        for name, r in (("bare paho responder", b), ("bare + worker thread", t),
                        ("headframe bridge", h), ("on paho's own paths", o)):  # fmt: skip
            print(f"  {name:20} {r['throughput_per_s']:8.1f} req/s  p50 {r['p50_ms']:.2f} ms  "
                  f"p95 {r['p95_ms']:.2f} ms  CPU {r['cpu_us_per_request']:.0f} us/request  "
                  f"errors {r['errors']}  load average {r['load_1m']:.2f}")  # fmt: skip
        print(f"  throughput ratio {out['throughput_ratio']:.3f} (target >= 0.70); "
              f"p50 {h['p50_ms']:.2f} ms (target < 3 ms); against the threaded bare "
              f"responder {out['threaded_ratio']:.3f}, p50 "
              f"{out['p50_over_threaded_ms']:+.2f} ms (target at one in flight <= +0.30); "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"  fast path over paho's own code paths: throughput {out['fast_path_ratio']:.3f}x, "
              f"p50 {out['fast_path_p50_saving_ms']:+.3f} ms saved; "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    if args.in_flight == 1:
        return 0 if out["p50_over_threaded_ms"] <= 0.3 else 1
    ok = out["throughput_ratio"] >= 0.7 and out["headframe"]["p50_ms"] < 3.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
