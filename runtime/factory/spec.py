"""What a build is asked to do (``BuildOptions``), the variant kinds it knows, and the
error for bad input. No heavy imports: the CLI reads this module to parse flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runtime.catalog import Lineage
from runtime.errors import BuildInputError as BuildInputError

ONNX_VARIANTS = (
    "fp32",
    "fp16",
    "int8-dynamic",
    "int8-static",
    "int8-weights",
    "openvino-fp16",
    "openvino-int8",
)
# A sentence-transformers directory (runtime/factory/encoder_build.py): what works for a
# transformer encoder without calibration data.
ENCODER_VARIANTS = ("fp32", "fp16", "int8-dynamic")
GGUF_VARIANTS = ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k")
# Also accepted for GGUF sources with --variants (llama.cpp file types by name).
GGUF_EXTRA = ("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_s", "q5_k_s", "q3_k_s", "q3_k_l")
# int8-static schemes: which signedness/range the quantizer uses (see onnx_variants).
INT8_SCHEMES = ("reduce-range", "s8s8", "u8s8")
DEFAULT_TIME_BUDGET_S = 600.0
DEFAULT_MAX_DROP_BP = 50


@dataclass(frozen=True)
class ExtraVariant:
    """An already-pruned model (``--add-variant PATH[:id]``) measured with the family."""

    path: Path
    variant: str
    pruning_bp: int = 0


@dataclass(frozen=True)
class BuildOptions:
    source: Path
    app: str
    version: str
    golden: Path
    out: Path | None = None  # the package directory to create
    store: Path | None = None  # or a store to install into
    variants: tuple[str, ...] | None = None  # None: every default the installed libs allow
    calibration: Path | None = None
    # auto | top1 | agreement | fidelity (token_agreement for GGUF; an encoder: fidelity,
    # the mean cosine similarity to the source's vectors)
    metric: str = "auto"
    fidelity_tolerance: float = 0.05
    max_drop_bp: int = DEFAULT_MAX_DROP_BP
    floor_bp: int = 0
    keep_all: bool = False
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    int8_scheme: str = "reduce-range"
    extra_variants: tuple[ExtraVariant, ...] = ()
    prune_counts: tuple[int, ...] = ()  # GGUF: make rungs with this many blocks dropped
    prune_choice: str = "last"  # last | measured (the blocks that cost least agreement)
    prune_quant: tuple[str, ...] = ("q8_0",)  # the quantization of the pruned rungs
    pruning_bp: int = 0  # of the source itself (a pruned fine-tune)
    lineage: Lineage | None = None
    description: str = ""
    latency_budget_us: int | None = None
    replace: bool = False
    latency_samples: int = 200
    extra: dict[str, str] = field(default_factory=dict)
