"""Structured output and embeddings: what a JSON schema costs, and embeddings/s.

All in one process, on one random-weight GGUF (``--size base`` is the ~50M-parameter
test model), same threads, same sampling, contenders taking turns for ``--rounds``
rounds after a warm-up; medians, each beside the load average:

  free        LlamaBackend.generate, no grammar (baseline)
  schema      the same with a JSON schema (runtime.structured.schema_grammar's GBNF)
              -> decode tokens/s ratio, ms per token added, TTFT difference.
              Targets: at most +10% or +0.1 ms per token, whichever is larger;
              TTFT within +20 ms.
  llama-emb   llama-cpp-python's own ``create_embedding`` on a Llama opened the way
              headframe opens it (embedding mode, llama.cpp mean pooling) (baseline)
  headframe   LlamaBackend.embed on the same batch of texts
              -> embeddings/s ratio. Target: at least 0.95x.
  engines     the grammar engines alone, replaying one schema-constrained token sequence:
              llama.cpp's grammar sampler (apply over the whole vocabulary + accept, what
              headframe runs) against llguidance (mask + consume), when llguidance is
              installed (``pip install llguidance``; not a headframe dependency)
              -> microseconds per token of each.

    .venv/bin/python bench/structured_bench.py --size base --tokens 256 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPT = "the conveyor belt motor reported a fault and the pump pressure is"
SCHEMA = {
    "type": "object",
    "properties": {
        "line": {"type": "string", "enum": ["crusher", "screen", "feeder"]},
        "severity": {"type": "integer", "minimum": 1, "maximum": 5},
        "parts": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 4},
        "summary": {"type": "string", "maxLength": 4000},
    },
    "required": ["line", "severity", "summary"],
}
TEXTS = [
    f"incident {i}: the conveyor belt motor on line {i % 7} reported a fault and the pump "
    "pressure is high, inspect the bearing and check the valve"
    for i in range(32)
]


def load(text: Path, threads: int, task: str) -> Any:
    from runtime.backends.base import LoadOptions
    from runtime.backends.llama import LlamaBackend
    from runtime.catalog import Variant, VariantMeta
    from runtime.catalog.writer import file_entry

    entry = file_entry(text, text.parent)
    meta = VariantMeta(
        variant="bench", format="gguf", precision="f32", entrypoint=text.name,
        files=(entry,), bytes=entry.size, peak_memory_bytes=entry.size,
    )  # fmt: skip
    backend = LlamaBackend()
    opts = LoadOptions(intra_op_threads=threads, inter_op_threads=threads, task=task)
    backend.load(Variant(meta, text.parent), opts)
    return backend


def generate(backend: Any, grammar: str | None, tokens: int, seed: int) -> tuple[float, float]:
    """(TTFT seconds, decode tokens per second) for one request."""
    from runtime.backends.base import GenerationRequest

    req = GenerationRequest(prompt=PROMPT, max_tokens=tokens, seed=seed, grammar=grammar)
    start = time.perf_counter()
    first = last = 0.0
    n = 0
    for chunk in backend.generate(req):
        now = time.perf_counter()
        if chunk.text and not first:
            first = now
        last = now
        n = chunk.completion_tokens
    return first - start, (n - 1) / max(last - first, 1e-9)


def embeddings_llama(model: Path, threads: int) -> Callable[[], float]:
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(model), n_ctx=2048, n_batch=2048, n_ubatch=2048, n_threads=threads,
        n_threads_batch=threads, embedding=True, verbose=False,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
    )  # fmt: skip

    def run() -> float:
        start = time.perf_counter()
        llm.create_embedding(TEXTS)
        return len(TEXTS) / (time.perf_counter() - start)

    return run


def embeddings_headframe(backend: Any) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        backend.embed(TEXTS)
        return len(TEXTS) / (time.perf_counter() - start)

    return run


def engine_costs(backend: Any, grammar: str, tokens: int) -> dict[str, float]:
    """Median microseconds per token of each grammar engine on one recorded sequence."""
    import ctypes

    import llama_cpp
    import numpy as np

    llm = backend._llm
    vocab = llm._model.vocab
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    llm.set_seed(1)
    ids: list[int] = []
    prompt = llm.tokenize(PROMPT.encode(), add_bos=True)
    for t in llm.generate(prompt, temp=0.8, top_p=0.95, grammar=backend._grammar(grammar)):
        if backend._is_eog(t) or len(ids) >= tokens:
            break
        ids.append(t)
    data = (llama_cpp.llama_token_data * n)()
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    llama_us = []
    for tok in ids:
        for i in range(n):
            data[i].id, data[i].logit, data[i].p = i, 0.0, 0.0
        start = time.perf_counter()
        arr = llama_cpp.llama_token_data_array(data=data, size=n, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
        llama_cpp.llama_sampler_accept(sampler, tok)
        llama_us.append((time.perf_counter() - start) * 1e6)
    llama_cpp.llama_sampler_free(sampler)
    out = {"vocab": float(n), "tokens": float(len(ids)), "llama_cpp_us": float(np.median(llama_us))}
    try:
        import llguidance
        from llguidance.llamacpp import lltokenizer_from_vocab
        from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask
    except ImportError:
        return out
    matcher = llguidance.LLMatcher(
        lltokenizer_from_vocab(vocab), llguidance.grammar_from("gbnf", grammar)
    )
    mask = allocate_token_bitmask(1, n)
    llg_us = []
    for tok in ids:
        start = time.perf_counter()
        fill_next_token_bitmask(matcher, mask)
        if not matcher.consume_token(tok):
            raise RuntimeError(f"llguidance refused token {tok}: {matcher.get_error()}")
        llg_us.append((time.perf_counter() - start) * 1e6)
    out["llguidance_us"] = float(np.median(llg_us))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="base", choices=["tiny", "small", "base"])
    ap.add_argument("--precision", default="q8_0", choices=["f32", "f16", "q8_0"])
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    from runtime.structured.schema_grammar import schema_grammar
    from tests.support.gguf_models import write_llama_gguf

    tmp = Path(tempfile.mkdtemp(prefix="structured-bench-"))
    model = write_llama_gguf(tmp / "model.gguf", size=args.size, precision=args.precision)
    grammar = schema_grammar(SCHEMA)
    gen = load(model, args.threads, "text")
    emb = load(model, args.threads, "embedding")
    contenders: dict[str, Callable[[int], Any]] = {
        "free": lambda seed: generate(gen, None, args.tokens, seed),
        "schema": lambda seed: generate(gen, grammar, args.tokens, seed),
    }
    emb_runs = {"llama-emb": embeddings_llama(model, args.threads), "headframe": None}
    emb_runs["headframe"] = embeddings_headframe(emb)
    for fn in contenders.values():  # warm-up
        fn(0)
    for fn in emb_runs.values():
        assert fn is not None
        fn()
    gen_results: dict[str, list[tuple[float, float]]] = {k: [] for k in contenders}
    emb_results: dict[str, list[float]] = {k: [] for k in emb_runs}
    loads = []
    for r in range(args.rounds):
        names = list(contenders)[r % 2 :] + list(contenders)[: r % 2]
        for name in names:
            gen_results[name].append(contenders[name](r + 1))
        for name in list(emb_runs)[r % 2 :] + list(emb_runs)[: r % 2]:
            run = emb_runs[name]
            assert run is not None
            emb_results[name].append(run())
        loads.append(os.getloadavg()[0])

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    free_tps = med([t for _, t in gen_results["free"]])
    schema_tps = med([t for _, t in gen_results["schema"]])
    free_ttft = med([f for f, _ in gen_results["free"]]) * 1000
    schema_ttft = med([f for f, _ in gen_results["schema"]]) * 1000
    added_ms = (1 / schema_tps - 1 / free_tps) * 1000
    llama_eps = med(emb_results["llama-emb"])
    hf_eps = med(emb_results["headframe"])
    load_now = os.getloadavg()
    figures = {
        "size": args.size, "precision": args.precision, "threads": args.threads,
        "free_tokens_per_s": free_tps, "schema_tokens_per_s": schema_tps,
        "schema_ratio": schema_tps / free_tps, "schema_added_ms_per_token": added_ms,
        "free_ttft_ms": free_ttft, "schema_ttft_ms": schema_ttft,
        "llama_embeddings_per_s": llama_eps, "headframe_embeddings_per_s": hf_eps,
        "embeddings_ratio": hf_eps / llama_eps, "loadavg_1m_median": med(loads),
    }  # fmt: skip
    la = f"(load {load_now[0]:.2f} {load_now[1]:.2f} {load_now[2]:.2f})"
    print(f"{args.size}/{args.precision}, {args.threads} thread(s), {args.rounds} rounds")
    print(
        f"decode tok/s  free {free_tps:8.1f}  schema {schema_tps:8.1f}  "
        f"ratio {schema_tps / free_tps:.3f}  +{added_ms:.3f} ms/token  {la}"
    )
    print(
        f"TTFT ms       free {free_ttft:8.2f}  schema {schema_ttft:8.2f}  "
        f"diff {schema_ttft - free_ttft:+.2f} ms  {la}"
    )
    print(f"embeddings/s  llama-cpp-python {llama_eps:8.1f}  headframe {hf_eps:8.1f}  "
          f"ratio {hf_eps / llama_eps:.3f}  ({len(TEXTS)} texts a call)  {la}")  # fmt: skip
    engines = engine_costs(gen, grammar, args.tokens)
    figures |= {f"engine_{k}": v for k, v in engines.items()}
    llg = engines.get("llguidance_us")
    llg_text = f"llguidance {llg:8.1f}" if llg is not None else "llguidance not installed"
    print(f"engine us/tok llama.cpp grammar {engines['llama_cpp_us']:8.1f}  {llg_text}  "
          f"(vocab {engines['vocab']:.0f}, {engines['tokens']:.0f} tokens)  {la}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    gen.unload()
    emb.unload()


if __name__ == "__main__":
    main()
