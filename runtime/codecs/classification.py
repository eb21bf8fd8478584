"""Top-k with names: Triton's classification extension, for HTTP and MQTT alike.

A client asks for it per output (KServe ``outputs[i].parameters.classification = k``;
tritonclient's ``InferRequestedOutput(name, class_count=k)``). The output's last axis is
replaced by the k best entries, best first, as BYTES strings ``"score:index:label"``
(``"score:index"`` when the package carries no label list for that output), exactly the
strings Triton sends, so its clients parse them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.errors import InvalidInput


def top_k(name: str, scores: np.ndarray, k: int, labels: Sequence[str] | None) -> np.ndarray:
    """BYTES [..., min(k, classes)] of ``scores``' best entries along the last axis."""
    arr = np.asarray(scores)
    if arr.ndim == 0 or arr.dtype.kind not in "fiu" or arr.shape[-1] == 0:
        raise InvalidInput(
            f"output {name!r} ({arr.dtype}, shape {list(arr.shape)}) has no classes to rank"
        )
    k = min(k, arr.shape[-1])
    idx = np.argsort(-arr.astype(np.float64), axis=-1, kind="stable")[..., :k]
    best = np.take_along_axis(arr, idx, axis=-1)
    out = np.empty(idx.shape, dtype=object)
    flat_out, flat_idx, flat_best = out.reshape(-1), idx.reshape(-1), best.reshape(-1)
    for j, (i, v) in enumerate(zip(flat_idx.tolist(), flat_best.tolist(), strict=True)):
        label = f":{labels[i]}" if labels is not None and i < len(labels) else ""
        flat_out[j] = f"{v:f}:{i}{label}".encode()
    return out
