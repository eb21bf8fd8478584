"""Text application packages made of real random-weight GGUF variants.

``write_text_package(store)`` writes ``<store>/<app>/<version>/`` with package.toml
(task "text") and one variant per (id, size, precision) entry, each a GGUF from
``tests.support.gguf_models`` with its real digest, size and a peak-memory estimate.
"""

from __future__ import annotations

from pathlib import Path

from runtime.catalog import Lineage, ModelPackage, PackageMeta, VariantMeta, load_package
from runtime.catalog.writer import file_entry, write_package_meta, write_variant_meta
from tests.support.gguf_models import Precision, Size, write_llama_gguf

DEFAULT_VARIANTS: tuple[tuple[str, Size, Precision], ...] = (
    ("tiny-q8_0", "tiny", "q8_0"),
    ("tiny-f32", "tiny", "f32"),
    ("small-f16", "small", "f16"),
)


def write_text_package(
    store: Path,
    app: str = "assistant",
    version: str = "1.0.0",
    variants: tuple[tuple[str, Size, Precision], ...] = DEFAULT_VARIANTS,
    *,
    seed: int = 0,
    bytes_sampled: bool = False,
) -> ModelPackage:
    """Write a text package into ``store`` and return it as the catalog reads it
    (``bytes_sampled``: its byte-fallback tokens are sampled like any other, see
    tests.support.gguf_models)."""
    pdir = Path(store) / app / version
    write_package_meta(
        PackageMeta(
            application=app,
            version=version,
            task="text",
            description="random-weight llama for tests",
            lineage=Lineage(foundation="test-llama", sector="test", application=app),
            accuracy_floor_bp=0,
        ),
        pdir,
    )
    for variant_id, size, precision in variants:
        vdir = pdir / "variants" / variant_id
        gguf = write_llama_gguf(
            vdir / "model.gguf", size=size, precision=precision, seed=seed,
            bytes_sampled=bytes_sampled,
        )  # fmt: skip
        entry = file_entry(gguf, vdir)
        write_variant_meta(
            VariantMeta(
                variant=variant_id,
                format="gguf",
                precision=precision,
                entrypoint="model.gguf",
                files=(entry,),
                bytes=entry.size,
                # weights plus a KV cache and compute buffers for a 2k context
                peak_memory_bytes=entry.size + 64 * 1024 * 1024,
                device_classes=("cpu", "gpu"),
            ),
            vdir,
        )
    return load_package(pdir)
