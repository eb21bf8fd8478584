"""Text streaming: headframe's OpenAI endpoint against in-process llama-cpp-python.

Measured in one run on the same random-weight GGUF, same threads, same sampling, each
contender in a process of its own:
  in-process  llama-cpp-python ``create_completion(stream=True)`` called directly (baseline)
  backend     headframe's LlamaBackend.generate called directly (no HTTP; attribution)
  headframe   POST /v1/completions stream=true on a headframe server (separate process)
  llama-srv   the same request on llama-cpp-python's own server (``llama_cpp.server``),
              when its extras (sse-starlette, starlette-context) are installed

Per request: time to first token (first non-empty text), end-to-end tokens per second
(tokens / time from request to last token) and the CPU time the serving process spent
per token (from /proc: on a shared machine the wall-clock figures are noisy, the CPU
cost of the streaming path is not). Contenders take turns, in a rotating
order, for ``--rounds`` rounds after a warm-up; medians are reported with ratios to the
in-process baseline. Targets: tokens/s >= 97% and TTFT within 15 ms of in-process.

    .venv/bin/python bench/text_bench.py --size base --tokens 256 --rounds 7
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.proc_cpu import cpu_seconds  # noqa: E402

PROMPT = "the conveyor belt motor reported a fault and the pump pressure is"
APP = "bench-llm"


# -- servers -----------------------------------------------------------------------


def serve_headframe(model: Path, port: int, threads: int) -> None:
    """Run a headframe server for ``model`` (child process entry point)."""
    import uvicorn

    from runtime.api.app import create_app
    from runtime.backends.base import LoadOptions
    from runtime.backends.llama import LlamaBackend
    from runtime.catalog import ModelPackage, Store
    from runtime.catalog.add import import_path
    from runtime.config import Settings
    from runtime.service import InferenceService

    # uvicorn stops on SIGTERM, so the temporary store is removed when the bench ends.
    with tempfile.TemporaryDirectory(prefix="hf-bench-store-") as tmp:
        store = Store(Path(tmp))
        package = import_path(store, model, APP, "1.0.0")

        class Loaded:
            def __init__(self, package: ModelPackage) -> None:
                self.package = package
                self.variant = package.variants[0]
                self.backend = LlamaBackend()
                self.backend.load(self.variant, LoadOptions(intra_op_threads=threads))
                self.selection = None
                self.attempts: list[Any] = []

        service = InferenceService(lambda pkg, pin: Loaded(pkg))
        app = create_app(service, settings=Settings())  # the daemon's app: guard, metrics, ...

        async def main() -> None:
            await service.add(package)
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            await uvicorn.Server(config).serve()

        asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def child(cmd: list[str], port: int, name: str) -> Iterator[int]:
    """Start a server process; yield its pid once it answers GET /v1/models."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{name} exited: {err[-2000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/v1/models")
                if c.getresponse().status == 200:
                    c.close()
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{name} did not answer within 120 s")
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- one request each ----------------------------------------------------------------


def run_http(port: int, model: str, tokens: int, seed: int) -> tuple[float, float, int]:
    """Stream one completion; return (ttft_s, total_s, text events)."""
    body = json.dumps(
        {"model": model, "prompt": PROMPT, "max_tokens": tokens, "seed": seed,
         "temperature": 0.8, "top_p": 0.95, "stream": True}
    )  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:500]!r}")
    first = 0.0
    events = 0
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        obj = json.loads(line[6:])
        if obj.get("choices") and obj["choices"][0].get("text"):
            events += 1
            if not first:
                first = time.perf_counter() - start
    total = time.perf_counter() - start
    conn.close()
    return first, total, events


def run_inprocess(llm: Any, tokens: int, seed: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = 0.0
    events = 0
    for chunk in llm.create_completion(
        PROMPT, max_tokens=tokens, seed=seed, temperature=0.8, top_p=0.95, stream=True
    ):
        if chunk["choices"][0]["text"]:
            events += 1
            if not first:
                first = time.perf_counter() - start
    return first, time.perf_counter() - start, events


def run_backend(backend: Any, tokens: int, seed: int) -> tuple[float, float, int]:
    from runtime.backends.base import GenerationRequest

    req = GenerationRequest(prompt=PROMPT, max_tokens=tokens, seed=seed)
    start = time.perf_counter()
    first = 0.0
    events = 0
    for chunk in backend.generate(req):
        if chunk.text:
            events += 1
            if not first:
                first = time.perf_counter() - start
    return first, time.perf_counter() - start, events


# -- main ------------------------------------------------------------------------------


def serve_local(kind: str, model: Path, threads: int, tokens: int) -> None:
    """Child process for the in-process contenders: one line per request on stdin (the
    seed), one line back on stdout ("ttft total events"). Each contender then has a
    process of its own, as the servers do, so no one shares an interpreter or a cache."""
    from llama_cpp import Llama

    from runtime.backends.base import LoadOptions
    from runtime.backends.llama import LlamaBackend
    from runtime.catalog import FileEntry, Variant, VariantMeta

    run: Callable[[int], tuple[float, float, int]]
    if kind == "in-process":
        llm = Llama(model_path=str(model), n_ctx=2048, n_threads=threads,
                    n_threads_batch=threads, verbose=False)  # fmt: skip
        run = lambda seed: run_inprocess(llm, tokens, seed)  # noqa: E731
    else:
        size = model.stat().st_size
        meta = VariantMeta(
            variant="bench", format="gguf", precision="f32", entrypoint=model.name,
            files=(FileEntry(path=model.name, sha256="0" * 64, size=size),), bytes=size,
            peak_memory_bytes=size,
        )  # fmt: skip
        backend = LlamaBackend()
        backend.load(Variant(meta, model.parent), LoadOptions(intra_op_threads=threads))
        run = lambda seed: run_backend(backend, tokens, seed)  # noqa: E731
    print("ready", flush=True)
    for line in sys.stdin:
        first, total, events = run(int(line))
        print(f"{first} {total} {events}", flush=True)


class LocalChild:
    """Talks to a ``serve_local`` child."""

    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{cmd} did not start")

    def __call__(self, seed: int) -> tuple[float, float, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{seed}\n")
        self.proc.stdin.flush()
        first, total, events = self.proc.stdout.readline().split()
        return float(first), float(total), int(events)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="base", choices=["tiny", "small", "base"])
    ap.add_argument("--precision", default="q8_0", choices=["f32", "f16", "q8_0"])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-peer", action="store_true", help="skip llama-cpp-python's server")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--serve-headframe", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--serve-local", nargs=2, metavar=("KIND", "MODEL"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_headframe:
        serve_headframe(args.serve_headframe, args.port, args.threads)
        return
    if args.serve_local:
        serve_local(args.serve_local[0], Path(args.serve_local[1]), args.threads, args.tokens)
        return

    from tests.support.gguf_models import write_llama_gguf

    work = Path(tempfile.mkdtemp(prefix="hf-text-bench-"))
    model = write_llama_gguf(work / "model.gguf", size=args.size, precision=args.precision)
    size = model.stat().st_size
    print(f"model: {args.size} {args.precision} ({size / 1e6:.1f} MB), {args.tokens} tokens, "
          f"{args.threads} thread(s), {args.rounds} rounds")  # fmt: skip

    common = ["--threads", str(args.threads), "--tokens", str(args.tokens)]
    locals_ = {
        name: LocalChild([sys.executable, __file__, "--serve-local", name, str(model), *common])
        for name in ("in-process", "backend")
    }
    contenders: dict[str, Callable[[int], Run]] = {
        name: timed(c.proc.pid, c) for name, c in locals_.items()
    }
    hf_port, peer_port = free_port(), free_port()
    hf_cmd = [sys.executable, __file__, "--serve-headframe", str(model), "--port", str(hf_port),
              "--threads", str(args.threads)]  # fmt: skip
    peer_cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
                "--model_alias", APP, "--host", "127.0.0.1", "--port", str(peer_port),
                "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
                "--n_ctx", "2048", "--verbose", "False"]  # fmt: skip
    peer_ok = not args.no_peer
    if peer_ok:
        try:
            import sse_starlette  # noqa: F401
            import starlette_context  # noqa: F401
        except ImportError:
            print("llama-cpp-python's server extras are missing: skipping the peer")
            peer_ok = False

    results: dict[str, list[Run]] = {}
    with child(hf_cmd, hf_port, "headframe") as hf_pid:
        contenders["headframe"] = timed(hf_pid, lambda s: run_http(hf_port, APP, args.tokens, s))
        with child(peer_cmd, peer_port, "llama-srv") if peer_ok else _nothing() as peer_pid:
            if peer_ok:
                contenders["llama-srv"] = timed(
                    peer_pid, lambda s: run_http(peer_port, APP, args.tokens, s)
                )
            names = list(contenders)
            for name in names:  # warm-up: page in weights, fill caches
                contenders[name](0)
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    results.setdefault(name, []).append(contenders[name](r + 1))
    for c in locals_.values():
        c.close()
    report(results, args)


@contextmanager
def _nothing() -> Iterator[int]:
    yield 0


Run = tuple[float, float, int, float]  # ttft s, total s, text events, server CPU s


def timed(pid: int, fn: Callable[[int], tuple[float, float, int]]) -> Callable[[int], Run]:
    """Also measure the CPU the serving process spent: unlike wall time, it does not
    depend on what else the (shared) machine is running."""

    def run(seed: int) -> Run:
        before = cpu_seconds(pid)
        first, total, events = fn(seed)
        return first, total, events, cpu_seconds(pid) - before

    return run


def report(results: dict[str, list[Run]], args: argparse.Namespace) -> None:
    def med(runs: list[Run], f: Callable[[Run], float]) -> float:
        return statistics.median(f(r) for r in runs)

    base = results["in-process"]
    base_tps = med(base, lambda r: args.tokens / r[1])
    base_ttft = med(base, lambda r: r[0])
    base_cpu = sum(r[3] for r in base) / (len(base) * args.tokens)
    figures: dict[str, Any] = {}
    print(f"{'contender':<12} {'tok/s':>8} {'ratio':>6} {'TTFT ms':>8} {'dTTFT ms':>9} "
          f"{'CPU ms/tok':>10} {'CPU ratio':>9} {'events':>6}")  # fmt: skip
    for name, runs in results.items():
        tps = med(runs, lambda r: args.tokens / r[1])
        ttft = med(runs, lambda r: r[0])
        cpu = sum(r[3] for r in runs) / (len(runs) * args.tokens)
        figures[name] = {
            "tokens_per_s": round(tps, 1),
            "ratio": round(tps / base_tps, 4),
            "ttft_ms": round(ttft * 1000, 2),
            "ttft_delta_ms": round((ttft - base_ttft) * 1000, 2),
            "cpu_ms_per_token": round(cpu * 1000, 3),
            "cpu_ratio": round(cpu / base_cpu, 4) if base_cpu else None,
            "text_events": med(runs, lambda r: r[2]),
            "tokens_per_s_runs": [round(args.tokens / r[1], 1) for r in runs],
        }
        f = figures[name]
        print(f"{name:<12} {tps:8.1f} {f['ratio']:6.3f} {ttft * 1000:8.2f} "
              f"{f['ttft_delta_ms']:9.2f} {f['cpu_ms_per_token']:10.3f} "
              f"{f['cpu_ratio'] or 0:9.3f} {f['text_events']:6.0f}")  # fmt: skip
    hf = figures["headframe"]
    tps_ok, ttft_ok = hf["ratio"] >= 0.97, hf["ttft_delta_ms"] <= 15
    print(
        f"targets: tokens/s >= 97% of in-process: {tps_ok} ({hf['ratio']:.3f}); "
        f"TTFT within 15 ms: {ttft_ok} ({hf['ttft_delta_ms']:+.2f} ms)"
    )
    if args.json:
        out = {"args": {k: str(v) for k, v in vars(args).items()}, "figures": figures}
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
