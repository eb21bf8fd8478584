"""Measuring a variant with the runtime that will serve it: golden-set accuracy and
single-request latency on this CPU.

Latency is the median of single-row requests on one thread after a warm-up, so the
figure describes the model, not the machine's momentary load or its core count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from runtime.demo.export_onnx import INPUT_NAME, OUTPUT_NAME
from runtime.demo.train import accuracy_bp
from runtime.factory import measure as factory_measure

Runner = Callable[[np.ndarray], np.ndarray]
TIMED = 200


def onnx_runner(path: Path, threads: int = 1) -> Runner:
    """A function pixels -> probabilities backed by an onnxruntime CPU session."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def run(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(sess.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0])

    return run


def openvino_runner(xml_path: Path, threads: int = 1) -> Runner:
    """A function pixels -> probabilities backed by an OpenVINO CPU compiled model."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        str(xml_path),
        "CPU",
        {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads},
    )
    request = compiled.create_infer_request()
    output = compiled.output(OUTPUT_NAME)

    def run(pixels: np.ndarray) -> np.ndarray:
        # Zero-copy in and out (the output buffer is reused by the next call, hence the
        # copy): the same calls a serving backend makes, without avoidable Python overhead.
        result = request.infer({INPUT_NAME: pixels}, share_inputs=True, share_outputs=True)
        return np.array(result[output], copy=True)

    return run


def accuracy(run: Runner, pixels: np.ndarray, labels: np.ndarray) -> int:
    """Golden-set accuracy in basis points (argmax of the probabilities)."""
    return accuracy_bp(np.argmax(run(pixels), axis=1), labels)


def latency_us(run: Runner, pixels: np.ndarray) -> int:
    """Median single-row latency in microseconds, measured as the variant factory does."""
    return factory_measure.latency_us(
        lambda row: {OUTPUT_NAME: run(row[INPUT_NAME])}, {INPUT_NAME: pixels}, TIMED
    )
