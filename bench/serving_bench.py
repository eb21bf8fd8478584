"""Serving benchmarks: KServe v2 JSON throughput against MLServer and two bare apps,
binary against JSON tensors on a 224x224x3 input, and cold start of `headframe serve`.

Every server runs as its own process and serves the same ONNX file (the demo's fp32
variant) with onnxruntime on one intra-op thread; wrk drives 8 connections. The bare apps
(bench/bare_kserve_app.py) run inference inline on the loop (the ceiling) or on one worker
thread (the fair baseline: headframe never runs inference on the loop); every row has its
ratio to the threaded one and the load average of each round. Rounds are interleaved
(headframe, bare, MLServer, headframe, ...) and the median is reported; only figures
measured at a load average under 1 mean anything.

    .venv/bin/python bench/serving_bench.py [--store DIR] [--rounds 3] [--seconds 5]
        [--mlserver /tmp/mlserver-venv/bin/mlserver]

Needs wrk (apt-get install wrk). MLServer is optional: install it in its own venv
(python3 -m venv /tmp/mlserver-venv && /tmp/mlserver-venv/bin/pip install mlserver
onnxruntime); without it that row says why it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
APP = "part-id-reader"
VARIANT = "fp32"
CONNECTIONS = 8

BARE_APP = REPO / "bench" / "bare_kserve_app.py"  # modes: "inline", "threaded"

MLSERVER_RUNTIME = textwrap.dedent(
    """
    import onnxruntime as ort
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.types import InferenceRequest, InferenceResponse

    class OnnxModel(MLModel):
        async def load(self) -> bool:
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            self.sess = ort.InferenceSession(self.settings.parameters.uri, so,
                                             providers=["CPUExecutionProvider"])
            return True

        async def predict(self, payload: InferenceRequest) -> InferenceResponse:
            x = NumpyCodec.decode_input(payload.inputs[0])
            y = self.sess.run(None, {payload.inputs[0].name: x})[0]
            return InferenceResponse(model_name=self.name,
                                     outputs=[NumpyCodec.encode_output("probabilities", y)])
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(url: str, body: bytes, seconds: float, connections: int, work: Path) -> dict[str, Any]:
    script = work / "post.lua"
    (work / "body.json").write_bytes(body)
    script.write_text(
        'local f = io.open("' + str(work / "body.json") + '", "rb")\n'
        "wrk.method = 'POST'\nwrk.body = f:read('*a')\nf:close()\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
    )
    threads = str(min(2, connections))
    duration = f"{max(1, round(seconds))}s"
    cmd = ["wrk", "-t", threads, "-c", str(connections), "-d", duration, "--latency"]
    out = subprocess.run(
        [*cmd, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": float(p50.group(1)) * scale[p50.group(2)] if p50 else None,
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def headframe_config(work: Path, store: Path, port: int) -> Path:
    cfg = work / "headframe.toml"
    cfg.write_text(
        f'demo = false\nprofile = "generic-x86-64"\nlog_level = "WARNING"\n'
        f'[paths]\nstore_dir = "{store}"\nstate_dir = "{work / "state"}"\n'
        f'cache_dir = "{work / "cache"}"\nprofiles_dir = "{REPO / "device_profiles"}"\n'
        f"[api]\nport = {port}\n"
        f'[[applications]]\nname = "{APP}"\nvariant = "{VARIANT}"\n'
    )
    return cfg


def start_headframe(work: Path, store: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cfg = headframe_config(work, store, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "--config", str(cfg)], cwd=REPO
    )
    return proc, f"http://127.0.0.1:{port}"


def start_bare(model: Path, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(BARE_APP), str(model), str(port), mode])
    return proc, f"http://127.0.0.1:{port}"


def start_mlserver(work: Path, model: Path, binary: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    d = work / "mlserver"
    d.mkdir(exist_ok=True)
    (d / "runtime_onnx.py").write_text(MLSERVER_RUNTIME)
    (d / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(),
        "parallel_workers": 0, "debug": False,
    }))  # fmt: skip
    (d / "model-settings.json").write_text(json.dumps({
        "name": APP, "implementation": "runtime_onnx.OnnxModel",
        "parameters": {"uri": str(model)},
    }))  # fmt: skip
    proc = subprocess.Popen(
        [binary, "start", str(d)], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, f"http://127.0.0.1:{port}"


def demo_store(store: Path | None, work: Path) -> Path:
    """``store`` (a built demo store), or one built into ``work``."""
    if store is not None:
        return store
    from runtime.demo import build_demo_catalog

    build_demo_catalog(work / "demo-store")
    return work / "demo-store"


def model_and_body(store: Path) -> tuple[Path, bytes]:
    """The demo variant's .onnx file and a KServe v2 JSON body with one golden row."""
    model = store / APP / "1.0.0" / "variants" / VARIANT / "model.onnx"
    row = np.load(store / APP / "1.0.0" / "golden.npz")["pixels"][:1].astype(np.float32)
    body = json.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 64],
                                   "data": row.ravel().tolist()}]}).encode()  # fmt: skip
    return model, body


def throughput(args: argparse.Namespace, store: Path, work: Path) -> dict[str, Any]:
    model, body = model_and_body(store)
    servers: dict[str, Any] = {
        "headframe": lambda: start_headframe(work, store),
        "bare, threaded": lambda: start_bare(model, "threaded"),
        "bare, inline": lambda: start_bare(model, "inline"),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    notes: dict[str, str] = {}
    mlserver = args.mlserver
    if mlserver and Path(mlserver).exists():
        servers["MLServer"] = lambda: start_mlserver(work, model, mlserver)
        results["MLServer"] = []
    else:
        notes["MLServer"] = f"not measured: {mlserver} not found (see the module docstring)"
    single: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(args.rounds):
        for name, start in servers.items():
            proc, url = start()
            try:
                bare = name.startswith("bare")
                wait_ready(url + "/" if bare else f"{url}/v2/health/ready", proc)
                infer = f"{url}/v2/models/{APP}/infer"
                if name == "headframe":
                    import httpx

                    meta = httpx.get(f"{url}/v2/models/{APP}").json()["parameters"]
                    notes["headframe"] = "served {variant} on {backend}/{device}".format(**meta)
                wrk(infer, body, 1, CONNECTIONS, work)  # warm-up
                run = wrk(infer, body, args.seconds, CONNECTIONS, work)
                run["load_avg_1m"] = os.getloadavg()[0]  # beside every figure: was it idle?
                results[name].append(run)
                print(f"{name}: {run['rps']:.0f} req/s, load average {run['load_avg_1m']:.2f}",
                      file=sys.stderr)  # fmt: skip
                one = wrk(infer, body, args.seconds / 2, 1, work)
                if one["p50_ms"] is not None:
                    single[name].append(one["p50_ms"])
            except Exception as e:
                notes[name] = f"failed: {e}"
            finally:
                stop(proc)
    table = {}
    for name, runs in results.items():
        if runs:
            table[name] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms_8conn": statistics.median(r["p50_ms"] for r in runs),
                "p50_ms_1conn": statistics.median(single[name]) if single[name] else None,
                "non_2xx": sum(r["non_2xx"] for r in runs),
                "load_avg_1m": [round(r["load_avg_1m"], 2) for r in runs],
            }
    base = table.get("bare, threaded", {}).get("rps")
    for row in table.values():  # the target: headframe at 0.9x the threaded bare app or more
        row["x_bare_threaded"] = round(row["rps"] / base, 2) if base else None
    return {"servers": table, "notes": notes}


def binary_vs_json(work: Path) -> dict[str, Any]:
    """224x224x3 FP32 through tritonclient against a headframe app serving a mean-pool model."""
    import asyncio
    import threading

    import onnx
    import tritonclient.http as triton
    import uvicorn
    from onnx import TensorProto, helper

    from runtime.api.app import create_app
    from runtime.backends.base import LoadOptions
    from runtime.backends.onnx import OnnxBackend
    from runtime.catalog import load_package
    from runtime.config import Settings
    from runtime.service import InferenceService

    pdir = work / "store" / "image-mean" / "1"
    vdir = pdir / "variants" / "base"
    vdir.mkdir(parents=True)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2], keepdims=0)],
        "mean",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 224, 224, 3])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["n", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, vdir / "model.onnx")
    import hashlib

    data = (vdir / "model.onnx").read_bytes()
    (vdir / "variant.toml").write_text(
        f'variant = "base"\nformat = "onnx"\nprecision = "fp32"\nentrypoint = "model.onnx"\n'
        f"bytes = {len(data)}\npeak_memory_bytes = {len(data)}\n"
        f'[[files]]\npath = "model.onnx"\nsha256 = "{hashlib.sha256(data).hexdigest()}"\n'
        f"size = {len(data)}\n"
    )
    (pdir / "package.toml").write_text(
        'application = "image-mean"\nversion = "1"\ntask = "tensor"\naccuracy_floor_bp = 0\n'
        '[lineage]\nfoundation = "x"\nsector = "x"\napplication = "x"\n'
    )
    package = load_package(pdir)

    class Loaded:
        def __init__(self) -> None:
            self.package, self.variant = package, package.variants[0]
            self.backend = OnnxBackend()
            self.backend.load(self.variant, LoadOptions(intra_op_threads=1))
            self.selection, self.attempts = None, []

    port = free_port()
    loop = asyncio.new_event_loop()
    state: dict[str, Any] = {}

    async def main() -> None:
        service = InferenceService(lambda p, pin: Loaded())
        await service.add(package)
        app = create_app(service, settings=Settings(demo=False))
        server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", lifespan="off"))
        state["server"] = server
        await server.serve()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    client = triton.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.is_server_ready():
                break
        except Exception:
            time.sleep(0.1)
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    timings: dict[str, float] = {}
    for binary in (True, False, True, False):
        inp = triton.InferInput("image", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = triton.InferRequestedOutput("mean", binary_data=binary)
        times = []
        for _ in range(20):
            t = time.perf_counter()
            client.infer("image-mean", [inp], outputs=[out])
            times.append(time.perf_counter() - t)
        # The client's own encoding is part of what a user waits for: included.
        timings["binary" if binary else "json"] = statistics.median(times) * 1000
    state["server"].should_exit = True
    thread.join(30)
    return {
        "binary_ms": round(timings["binary"], 2),
        "json_ms": round(timings["json"], 2),
        "json_over_binary": round(timings["json"] / timings["binary"], 2),
    }


def cold_start(store: Path, work: Path) -> dict[str, Any]:
    """Process start to READY=1 on a real notify socket; idle RSS once ready."""
    import psutil

    results = []
    for i in range(3):
        sock_path = work / f"notify-{i}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        port = free_port()
        cfg = work / f"cold-{i}.toml"
        cfg.write_text(
            f'demo = false\nlog_level = "WARNING"\n[paths]\nstore_dir = "{store}"\n'
            f'state_dir = "{work / "state"}"\ncache_dir = "{work / "cold-cache"}"\n'
            f'profiles_dir = "{REPO / "device_profiles"}"\n[api]\nport = {port}\n'
        )
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime", "serve", "--config", str(cfg)],
            cwd=REPO, env={**os.environ, "NOTIFY_SOCKET": str(sock_path)},
        )  # fmt: skip
        sock.settimeout(120)
        while True:
            msg = sock.recv(65536).decode()
            if "READY=1" in msg.splitlines():
                break
        ready_s = time.perf_counter() - t0
        time.sleep(1.0)
        rss = psutil.Process(proc.pid).memory_info().rss
        stop(proc)
        sock.close()
        results.append((ready_s, rss))
    return {
        "ready_s_median": round(statistics.median(r[0] for r in results), 2),
        "ready_s_all": [round(r[0], 2) for r in results],
        "idle_rss_mib": round(statistics.median(r[1] for r in results) / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="a built demo store (default: build one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--mlserver", default="/tmp/mlserver-venv/bin/mlserver")
    parser.add_argument("--only", choices=["throughput", "binary", "cold"], action="append")
    args = parser.parse_args()
    if shutil.which("wrk") is None and (not args.only or "throughput" in args.only):
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        work = Path(tmp)
        store = demo_store(args.store, work)
        report: dict[str, Any] = {}
        only = args.only or ["throughput", "binary", "cold"]
        if "throughput" in only:
            report["throughput"] = throughput(args, store, work)
        if "binary" in only:
            report["binary_vs_json_224x224x3"] = binary_vs_json(work)
        if "cold" in only:
            report["cold_start"] = cold_start(store, work)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
