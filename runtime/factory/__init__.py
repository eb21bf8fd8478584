"""The variant factory (``headframe models build``): one fp32 ONNX or f16 GGUF model, or a
sentence-transformers directory, plus the application's golden data -> the ladder of
smaller variants, each measured (quality on the golden set, bytes, latency) -> an ordinary
model package.

Modules, one job each: spec.py (options, variant kinds, the input error), golden.py (the
golden file), quality.py (the metrics, shared with the fleet trial), measure.py (a
variant through its real backend), onnx_variants.py / openvino_variants.py /
gguf_variants.py (the conversions, by the runtimes' own tools), exclusion.py (int8
layer exclusion), onnx_build.py / gguf_build.py / encoder_build.py (the three families;
encoder_export.py is the one sentence-transformers -> ONNX converter), context.py (the
step runner), destination.py (staging and the final rename), builder.py (orchestration),
results.py (what is reported), report.py (the terminal table and --json).

Importing this package is cheap; the runtimes are imported by the steps that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.factory.spec import BuildInputError, BuildOptions, ExtraVariant

if TYPE_CHECKING:
    from runtime.factory.results import BuildResult, Progress


def build(opts: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Build the family and its package; see runtime.factory.builder.build."""
    from runtime.factory.builder import build as run

    return run(opts, progress)


def __getattr__(name: str) -> Any:
    if name == "NoVariantSurvived":
        from runtime.factory.builder import NoVariantSurvived

        return NoVariantSurvived
    raise AttributeError(name)


__all__ = ["BuildInputError", "BuildOptions", "ExtraVariant", "build"]
