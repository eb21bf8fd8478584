"""A trial load at import: a model that no runtime here can load is refused when it is
added, not when a daemon first tries to serve it.

``headframe models add`` passes ``trial_load`` to runtime.catalog.add.import_path (the
catalog loads no models itself). Each variant is loaded once on the CPU by the backends
whose runtimes are installed here, in the backend table's order, until one succeeds;
when every one that could try fails (an ONNX custom operator domain, an OpenVINO IR with
an operation the plugin lacks, a GGUF architecture llama.cpp does not know), the import
fails with each runtime's reason. A format no installed runtime opens is not tried (a
build machine may lack the box's runtimes). The context asked of a text model is small:
the load is a check, not a serving configuration.

BLOCKING: loads models; called by the CLI, never on an event loop.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from runtime.backends.base import LoadOptions
from runtime.backends.registry import backends_for_format, create_backend
from runtime.catalog import ModelPackage
from runtime.errors import BackendUnavailable, MetadataError

log = logging.getLogger(__name__)

TRIAL = LoadOptions(device="cpu", intra_op_threads=1, context_tokens=256)


def _reason(e: Exception, file: Path) -> str:
    """The runtime's first line, without the (staging) path it names the file by."""
    text = (getattr(e, "message", None) or str(e)).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    first = first.replace(f"{file}: ", "").replace(str(file), file.name)
    return first[:300]


def trial_load(package: ModelPackage) -> None:
    """Load every variant of ``package`` once; MetadataError naming every runtime's reason
    when none could load one (the caller names the file it imported)."""
    for variant in package.variants:
        reasons: list[str] = []
        for name in backends_for_format(variant.meta.format):
            try:
                backend = create_backend(name)
            except BackendUnavailable:
                continue  # not installed here: nothing to say about the model
            try:
                backend.load(variant, replace(TRIAL, task=package.meta.task))
            except BackendUnavailable:
                continue  # no CPU device for it here
            except Exception as e:  # the runtime's own refusal, whatever its type
                reasons.append(f"{name}: {_reason(e, variant.entrypoint)}")
                continue
            backend.unload()
            log.info("%s loads with %s", variant.entrypoint, name)
            break
        else:
            if reasons:
                raise MetadataError(
                    f"no runtime here can load it ({'; '.join(reasons)})"
                    + (f" [variant {variant.id}]" if len(package.variants) > 1 else "")
                )
            log.info("%s: no runtime installed here opens it; not tried", variant.entrypoint)
