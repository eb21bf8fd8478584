"""The golden file: the application's own inputs, and what a box needs to score a
variant without the source model.

``golden.npz`` (beside package.toml) holds one array per model input (rows on the first
axis) and, by metric (runtime.catalog.quality):

- ``labels`` (int64): for ``top1``;
- ``ref_top1`` (int64): the source model's argmax per row, for ``agreement``;
- ``ref_output`` (float32) and ``fidelity_tolerance`` (0-d float64): the source model's
  first output per row and the relative L2 tolerance, for ``fidelity``;
- ``text`` (uint8, UTF-8 bytes), ``tokens`` (int32, the source's tokenization) and
  ``ref_next`` (int32, the source's next-token argmax after each prefix), for
  ``token_agreement``.

Rows are on the first axis of every array. An input array of the model input's own rank
stacks rows on the model's first (batch) axis, so a slice of rows is one request (at most
as many rows as a fixed first axis allows). An input array with one more axis than the
model's input holds one whole request per row: a scalar input (a sample rate), or a
model whose batch axis is not its first (a recurrent state ``[layers, batch, units]``);
such a model takes one row per request. ``RowLayout`` is the one place that turns rows
into requests, for ``models build``, calibration on the box and the fleet trial alike.

The file is written with fixed zip timestamps, so the same arrays give the same sha256.
Every reader goes through ``load_arrays``, which checks the sizes the archive and each
array's header declare before anything is inflated (``check_npz``).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.catalog.package import TensorSpec
from runtime.errors import BuildInputError
from runtime.tensors import to_kserve_datatype

GOLDEN_FILE = "golden.npz"
# What a golden set's arrays may take in memory, inflated: every box that measures or
# trials a package reads all of it (1,000 rows of 224x224x3 float32 are 600 MB; sets
# that large belong on the build machine, not in a package).
MAX_GOLDEN_ARRAY_BYTES = 256 * 1024 * 1024
RESERVED = frozenset(
    {"labels", "ref_top1", "ref_output", "fidelity_tolerance", "text", "tokens", "ref_next"}
)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """An .npz that ``np.load`` reads, with fixed zip timestamps (np.savez stamps the
    current time into the archive, so its bytes would differ run to run)."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w") as f:
                # ascontiguousarray would turn a 0-d array (fidelity_tolerance) into 1-d
                np.lib.format.write_array(f, np.require(arr, requirements="C"), allow_pickle=False)
    return path


def check_npz(path: Path, max_bytes: int = MAX_GOLDEN_ARRAY_BYTES) -> None:
    """The sizes an .npz declares, read before any array is inflated: BuildInputError
    naming the file when its arrays together would pass ``max_bytes`` (a megabyte of
    zeros deflates from a gigabyte), or when an array's header claims more than its
    member holds (numpy allocates what the header says before it reads a byte)."""
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                total += info.file_size  # zipfile never inflates a member past this
                if total > max_bytes:
                    raise BuildInputError(
                        f"{path}: its arrays inflate to more than {max_bytes} bytes "
                        "(the limit for a golden set)"
                    )
                if info.filename.endswith(".npy"):
                    with zf.open(info) as member:
                        declared = _declared_bytes(member)
                    if declared > info.file_size:
                        raise BuildInputError(
                            f"{path}: {info.filename} claims {declared} bytes of data but holds "
                            f"{info.file_size}"
                        )
    except FileNotFoundError as e:
        raise BuildInputError(f"{path}: file not found") from e
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise BuildInputError(f"{path}: not a readable .npz golden set: {e}") from e


def _declared_bytes(member: Any) -> int:
    """The data size an .npy header declares (its shape times its item size)."""
    fmt = np.lib.format
    version = fmt.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = fmt.read_array_header_2_0(member)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    if dtype.hasobject:
        raise ValueError("an array of Python objects (pickles are never loaded)")
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * dtype.itemsize


def load_arrays(path: Path, max_bytes: int = MAX_GOLDEN_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """Every array of an .npz, its declared sizes checked first (``check_npz``);
    BuildInputError naming the file when it is not one, or is too large."""
    path = Path(path)
    check_npz(path, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError as e:
        raise BuildInputError(f"{path}: file not found") from e
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise BuildInputError(f"{path}: not a readable .npz golden set: {e}") from e
    except AttributeError as e:  # np.load returned a bare array (an .npy file)
        raise BuildInputError(f"{path}: not an .npz archive of named arrays") from e


@dataclass(frozen=True)
class TensorGolden:
    """Golden (or calibration) rows for a tensor model, checked against its inputs."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    rows: int


def _fits(want: Sequence[int], got: Sequence[int]) -> bool:
    return len(want) == len(got) and all(w in (-1, g) for w, g in zip(want, got, strict=True))


def _check_input(path: Path, spec: TensorSpec, arr: np.ndarray) -> None:
    try:
        datatype = to_kserve_datatype(arr.dtype)
    except Exception:
        datatype = str(arr.dtype)
    if datatype != spec.datatype:
        raise BuildInputError(
            f"{path}: input {spec.name!r} is {datatype}, the model takes {spec.datatype}"
        )
    if arr.ndim == 0:
        raise BuildInputError(
            f"{path}: input {spec.name!r} is one value; give one per row (shape [rows])"
        )
    whole_rows = arr.ndim == len(spec.shape) + 1 and _fits(spec.shape, arr.shape[1:])
    if not whole_rows and (arr.ndim != len(spec.shape) or not _fits(spec.shape[1:], arr.shape[1:])):
        want = "[" + ", ".join("?" if d == -1 else str(d) for d in spec.shape) + "]"
        raise BuildInputError(
            f"{path}: input {spec.name!r} has shape {list(arr.shape)}, the model takes {want}"
        )


def read_tensor_golden(
    path: Path, inputs: Sequence[TensorSpec], what: str = "golden"
) -> TensorGolden:
    """The rows of a golden or calibration .npz for a model with ``inputs``: every input
    present by name with the model's datatype and shape, the same number of rows each."""
    path = Path(path)
    arrays = load_arrays(path)
    names = [s.name for s in inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        have = ", ".join(sorted(k for k in arrays if k not in RESERVED)) or "none"
        raise BuildInputError(
            f"{path}: {what} set lacks input {', '.join(map(repr, missing))} "
            f"(the model's inputs: {', '.join(names)}; the file has: {have})"
        )
    for spec in inputs:
        _check_input(path, spec, arrays[spec.name])
    rows = {len(arrays[n]) for n in names}
    if len(rows) != 1 or 0 in rows:
        raise BuildInputError(f"{path}: every input needs the same, non-zero number of rows")
    n = rows.pop()
    labels = arrays.get("labels")
    if labels is not None:
        if labels.dtype.kind not in "iu" or labels.shape != (n,):
            raise BuildInputError(f"{path}: labels must be {n} integers, one per row")
        labels = labels.astype(np.int64)
    return TensorGolden({k: arrays[k] for k in names}, labels, n)


@dataclass(frozen=True)
class RowLayout:
    """How golden rows become requests (the module's docstring states the rule):
    ``whole`` names the inputs that hold one whole request per row; ``batch_limit`` is
    the model's fixed first axis, if it fixes one."""

    whole: frozenset[str] = frozenset()
    batch_limit: int | None = None

    @classmethod
    def of(cls, specs: Sequence[TensorSpec], arrays: Mapping[str, np.ndarray]) -> RowLayout:
        whole, limit = set(), None
        for spec in specs:
            arr = arrays.get(spec.name)
            if arr is None:
                continue
            if np.ndim(arr) == len(spec.shape) + 1:
                whole.add(spec.name)
            elif spec.shape and spec.shape[0] > 0:
                limit = spec.shape[0] if limit is None else min(limit, spec.shape[0])
        return cls(frozenset(whole), limit)

    def rows_per_request(self, wanted: int) -> int:
        """At most ``wanted`` rows, as many as one request may carry."""
        if self.whole:
            return 1
        return max(1, min(wanted, self.batch_limit or wanted))

    def request(
        self, arrays: Mapping[str, np.ndarray], names: Sequence[str], rows: Sequence[int]
    ) -> dict[str, np.ndarray]:
        """One request of the golden ``rows`` (one row when any input holds whole ones)."""
        if self.whole:
            i = rows[0]
            # [i, ...] keeps a 0-d array for a scalar input (arr[i] would be a numpy scalar),
            # and np.require keeps it 0-d (np.ascontiguousarray would make it [1])
            return {k: np.require(arrays[k][i, ...] if k in self.whole else arrays[k][i : i + 1],
                                  requirements="C") for k in names}  # fmt: skip
        idx = np.asarray(rows, dtype=np.int64)
        if len(idx) and np.all(np.diff(idx) == 1):  # a slice: no copy of the rows
            return {k: arrays[k][int(idx[0]) : int(idx[-1]) + 1] for k in names}
        return {k: arrays[k][idx] for k in names}

    def requests(
        self, arrays: Mapping[str, np.ndarray], names: Sequence[str], batch: int
    ) -> Iterator[dict[str, np.ndarray]]:
        """Every golden row in order, ``batch`` rows (or fewer) a request."""
        n = len(arrays[names[0]])
        step = self.rows_per_request(batch)
        for i in range(0, n, step):
            yield self.request(arrays, names, range(i, min(n, i + step)))


def read_text(path: Path) -> str:
    """The golden text of a text model: a .txt file, or .jsonl with a "text" per line."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise BuildInputError(f"{path}: file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise BuildInputError(f"{path}: not readable UTF-8 text: {e}") from e
    if path.suffix == ".jsonl":
        parts = []
        for i, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                parts.append(str(json.loads(line)["text"]))
            except (ValueError, KeyError, TypeError) as e:
                raise BuildInputError(f'{path}: line {i}: not a JSON object with "text"') from e
        raw = "\n".join(parts)
    if not raw.strip():
        raise BuildInputError(f"{path}: the golden text is empty")
    return raw


def tensor_golden_arrays(
    golden: TensorGolden,
    metric: str,
    first_output: np.ndarray,
    fidelity_tolerance: float,
) -> dict[str, np.ndarray]:
    """The arrays golden.npz keeps for a tensor package: inputs plus the references the
    metric needs (``first_output``: the source model's first output over every row)."""
    from runtime.catalog.quality import top1_ids

    arrays: dict[str, np.ndarray] = dict(golden.inputs)
    if golden.labels is not None:
        arrays["labels"] = golden.labels
    if metric in ("agreement", "fidelity"):
        arrays["ref_top1"] = top1_ids(first_output)
    if metric == "fidelity":
        arrays["ref_output"] = np.asarray(first_output, dtype=np.float32)
        arrays["fidelity_tolerance"] = np.asarray(fidelity_tolerance, dtype=np.float64)
    return arrays


def text_golden_arrays(
    text: str, tokens: Sequence[int], ref_next: np.ndarray
) -> dict[str, np.ndarray]:
    return {
        "text": np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
        "tokens": np.asarray(tokens, dtype=np.int32),
        "ref_next": np.asarray(ref_next, dtype=np.int32),
    }
