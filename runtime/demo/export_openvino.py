"""OpenVINO IR with fp16 weights, converted from the demo's ONNX graph.

``openvino.convert_model`` reads the ONNX file; ``save_model(compress_to_fp16=True)``
stores the constants as fp16 (halving the .bin) while the graph's inputs and outputs
stay FP32, so clients send the same tensors as to the ONNX variants.
"""

from __future__ import annotations

from pathlib import Path


def export_ir_fp16(onnx_path: Path, xml_path: Path) -> tuple[Path, Path]:
    """Write ``xml_path`` and its .bin next to it; returns both paths."""
    import openvino as ov

    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_path))
    ov.save_model(model, str(xml_path), compress_to_fp16=True)
    return xml_path, xml_path.with_suffix(".bin")
