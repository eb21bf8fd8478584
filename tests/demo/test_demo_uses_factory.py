"""The demo makes its int8 and IR variants through the factory: one quantization path,
with the same guarantees (within 50 bp of fp32, no x86 saturation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.catalog import Store
from runtime.demo.factory import APP, INT8_MAX_DROP_BP


def test_demo_int8_is_within_bounds_and_saturation_safe(demo_store: Path) -> None:
    import onnx
    from onnx import numpy_helper

    package = Store(demo_store).load(APP)
    int8 = package.variant("pruned75-int8").meta
    fp32 = package.variant("pruned75-fp32").meta
    assert int8.accuracy_bp is not None and fp32.accuracy_bp is not None
    assert fp32.accuracy_bp - int8.accuracy_bp <= INT8_MAX_DROP_BP == 50
    model = onnx.load(str(package.variant("pruned75-int8").entrypoint))
    weights = [
        numpy_helper.to_array(t)
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and t.name.endswith("_quantized")
    ]
    assert weights and all(int(np.abs(w).max()) <= 64 for w in weights)
