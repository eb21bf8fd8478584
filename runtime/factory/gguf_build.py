"""The GGUF family: from one f32/f16/bf16 GGUF, a ladder of llama.cpp quantizations
and layer-pruned rungs, each scored by token agreement with the source on the golden
text (perplexity of both reported alongside)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from runtime.catalog.golden import read_text, text_golden_arrays
from runtime.catalog.inspect import gguf_kv_cache_bytes
from runtime.catalog.quality import perplexity, token_agreement_bp
from runtime.errors import MetadataError
from runtime.factory import gguf_variants
from runtime.factory.context import BuildContext, FamilyOutput
from runtime.factory.results import VariantResult
from runtime.factory.spec import GGUF_VARIANTS, BuildInputError

log = logging.getLogger(__name__)


class GgufFamily:
    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self.opts = ctx.opts
        if self.opts.metric not in ("auto", "token_agreement"):
            raise BuildInputError(f"--metric {self.opts.metric} is for tensor models; GGUF "
                                  "sources are scored by token_agreement")  # fmt: skip
        self.reader, self.precision = gguf_variants.read_source(self.opts.source)
        self.blocks = gguf_variants.block_count(self.reader)
        try:  # the source's numbers are checked for type and range (one line, exit 2)
            self.kv_bytes = gguf_kv_cache_bytes(self.reader, path=Path(self.opts.source))
        except MetadataError as e:
            raise BuildInputError(e.message) from None
        self.text = read_text(self.opts.golden)
        self.tokens: list[int] = []
        self.ref_next = np.zeros(0, dtype=np.int32)

    def _file(self, vdir: Path, rung: str) -> Path:
        return vdir / f"{self.opts.app}-{rung}.gguf"

    def _measure(self, vr: VariantResult, path: Path) -> None:
        run = gguf_variants.run_text(path, self.tokens)
        vr.entrypoint = path.name
        vr.accuracy_bp = token_agreement_bp(run.next_ids, self.ref_next)
        vr.latency_us = run.latency_us
        vr.details["perplexity"] = round(perplexity(run.logits[:-1], self.tokens[1:]), 4)
        vr.runtime_bytes = self.kv_bytes

    def run(self) -> FamilyOutput:
        ctx, opts = self.ctx, self.opts
        self.tokens = gguf_variants.tokenize(opts.source, self.text)
        if len(self.tokens) < 3:
            raise BuildInputError(f"{opts.golden}: the golden text is too short (under 3 tokens)")
        ref = gguf_variants.run_text(opts.source, self.tokens)
        self.ref_next = ref.next_ids
        ctx.result.metric = "token_agreement"
        ctx.result.reference_bp = 10_000
        ctx.result.reference_latency_us = ref.latency_us
        ctx.result.reference_bytes = opts.source.stat().st_size
        ctx.result.details["source_perplexity"] = round(
            perplexity(ref.logits[:-1], self.tokens[1:]), 4
        )
        ctx.result.details["golden_tokens"] = len(self.tokens)
        rungs = list(opts.variants) if opts.variants is not None else list(GGUF_VARIANTS)
        prune_plans = [(n, q) for n in opts.prune_counts for q in opts.prune_quant]
        ctx.total_steps = len(rungs) + len(prune_plans)
        for rung in rungs:
            vr = VariantResult(rung, rung, "gguf", rung, pruning_bp=opts.pruning_bp,
                               device_classes=("cpu", "gpu"))  # fmt: skip
            ctx.step(vr, functools.partial(self._rung, vr, src=opts.source, rung=rung))
        chosen: dict[int, list[int]] = {}
        for n, q in prune_plans:
            if n not in chosen:
                chosen[n] = self._blocks_to_drop(n)
            drop = chosen[n]
            bp = round(10_000 * len(drop) / max(self.blocks, 1))
            vr = VariantResult(f"drop{n}-{q}", f"pruned-{q}", "gguf", q, pruning_bp=bp,
                               device_classes=("cpu", "gpu"))  # fmt: skip
            vr.details["dropped_blocks"] = drop
            ctx.step(vr, functools.partial(self._pruned, vr, drop=drop, rung=q))
        return FamilyOutput(
            task="text",
            golden_arrays=text_golden_arrays(self.text, self.tokens, self.ref_next),
            samples=len(self.ref_next),
        )

    def _rung(self, vr: VariantResult, vdir: Path, *, src: Path, rung: str) -> None:
        path = gguf_variants.quantize(src, self._file(vdir, rung), rung)
        self._measure(vr, path)

    def _pruned(self, vr: VariantResult, vdir: Path, *, drop: list[int], rung: str) -> None:
        path = self._file(vdir, rung)
        gguf_variants.quantize(self.opts.source, path, rung, prune=drop)
        self._measure(vr, path)

    def _blocks_to_drop(self, n: int) -> list[int]:
        """``last``: the last ``n`` blocks but the final one (it feeds the output head);
        ``measured``: the ``n`` blocks whose single removal keeps the most agreement."""
        if n <= 0 or n >= self.blocks:
            raise BuildInputError(f"--prune-layers {n}: the model has {self.blocks} blocks")
        if self.opts.prune_choice == "last":
            last = self.blocks - 1
            return list(range(last - n, last))
        costs: dict[int, int] = {}
        for i in range(self.blocks):
            if self.ctx.out_of_time():
                break
            path = self.ctx.work / f"drop-{i}.gguf"
            gguf_variants.quantize(self.opts.source, path, "q8_0", prune=[i])
            costs[i] = token_agreement_bp(
                gguf_variants.run_text(path, self.tokens).next_ids, self.ref_next
            )
            path.unlink(missing_ok=True)
        self.ctx.result.details["block_drop_agreement_bp"] = {str(i): c for i, c in costs.items()}
        best = sorted(costs, key=lambda i: (-costs[i], i))[:n]
        return sorted(best)
