"""Golden rows as requests (runtime/catalog/golden.py ``RowLayout``): the one rule that
models build, calibration on the box and the fleet trial share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.catalog import TensorSpec
from runtime.catalog.golden import RowLayout, read_tensor_golden, write_npz
from runtime.errors import BuildInputError

VAD = (
    TensorSpec(name="input", datatype="FP32", shape=(-1, -1)),
    TensorSpec(name="state", datatype="FP32", shape=(2, -1, 128)),
    TensorSpec(name="sr", datatype="INT64", shape=()),
)


def _vad_rows(n: int) -> dict[str, np.ndarray]:
    return {
        "input": np.zeros((n, 1, 576), np.float32),
        "state": np.zeros((n, 2, 1, 128), np.float32),
        "sr": np.full(n, 16_000, np.int64),
    }


def test_whole_request_rows_are_read_and_given_one_at_a_time(tmp_path: Path) -> None:
    """A stateful model: a scalar input and a state whose batch axis is the second. Each
    golden row is one request, with the scalar kept 0-d (a [1] array is another shape)."""
    golden = read_tensor_golden(write_npz(tmp_path / "g.npz", _vad_rows(5)), VAD)
    assert golden.rows == 5
    layout = RowLayout.of(VAD, golden.inputs)
    assert layout.whole == {"input", "state", "sr"} and layout.rows_per_request(64) == 1
    requests = list(layout.requests(golden.inputs, [s.name for s in VAD], 64))
    assert len(requests) == 5
    assert {k: v.shape for k, v in requests[0].items()} == {
        "input": (1, 576), "state": (2, 1, 128), "sr": ()
    }  # fmt: skip


def test_a_fixed_batch_axis_limits_rows_per_request() -> None:
    spec = (TensorSpec(name="image", datatype="FP32", shape=(1, 3, 8, 6)),)
    rows = {"image": np.zeros((4, 3, 8, 6), np.float32)}
    layout = RowLayout.of(spec, rows)
    assert not layout.whole and layout.batch_limit == 1
    assert [r["image"].shape for r in layout.requests(rows, ["image"], 64)] == [(1, 3, 8, 6)] * 4


def test_batched_rows_slice_the_batch_axis() -> None:
    spec = (TensorSpec(name="x", datatype="FP32", shape=(-1, 16)),)
    rows = {"x": np.arange(10 * 16, dtype=np.float32).reshape(10, 16)}
    layout = RowLayout.of(spec, rows)
    got = [r["x"].shape[0] for r in layout.requests(rows, ["x"], 4)]
    assert got == [4, 4, 2]
    np.testing.assert_array_equal(layout.request(rows, ["x"], [7, 2])["x"], rows["x"][[7, 2]])


def test_one_value_for_a_scalar_input_is_refused(tmp_path: Path) -> None:
    arrays = {**_vad_rows(3), "sr": np.array(16_000, np.int64)}
    path = write_npz(tmp_path / "g.npz", arrays)
    with pytest.raises(BuildInputError, match=r"input 'sr' is one value; give one per row"):
        read_tensor_golden(path, VAD)
