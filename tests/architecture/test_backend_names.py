"""No module outside a backend's own file and the backend table names a backend.

Adding a backend is its file in runtime/backends/ plus one row in runtime/backend_table.py
(tests/backends/test_backend_table.py shows one). That stays true only while no other
module spells a backend's name, its runtime, its KServe platform or a format as a string
of its own: each such string is a second place to edit. The walk reads every string
constant of runtime/ (docstrings and prose inside longer strings do not count).
"""

from __future__ import annotations

import ast
from pathlib import Path

from runtime.backend_table import BACKENDS, formats, runtimes

ROOT = Path(__file__).resolve().parents[2] / "runtime"

# Where naming them is the job: the table, the backends' own files, and the modules that
# read or make files of one format by hand (the build-side factory and demo, and the
# catalog's inspection of a bare .onnx, .xml or .gguf file).
OWNERS = ("backend_table.py", "backends/", "factory/", "demo/", "catalog/inspect.py")

NAMES = set(BACKENDS) | set(formats()) | set(runtimes()) | {r.platform for r in BACKENDS.values()}


def _named(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES:
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_only_the_table_and_the_backends_own_files_name_a_backend() -> None:
    found = [
        hit
        for path in sorted(ROOT.rglob("*.py"))
        if not path.relative_to(ROOT).as_posix().startswith(OWNERS)
        for hit in _named(path)
    ]
    assert not found, "backend names outside the table and the backends:\n" + "\n".join(found)


def test_the_walk_sees_a_name() -> None:
    assert _named(ROOT / "backend_table.py")
