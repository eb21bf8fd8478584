"""Staging directories as writers leave them: ``left_by_a_killed_writer`` has a real
process make one through the catalog's own helper, write into it, and die by SIGKILL
(no handler runs), as the OOM killer or a power cut would leave it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_WRITER = (
    "import sys, time; from pathlib import Path;"
    "from runtime.catalog.staging import make_staging_dir;"
    "d = make_staging_dir(Path(sys.argv[1]), sys.argv[2]);"
    "(d / 'model.onnx').write_bytes(b'x' * 4096);"
    "print(d.name, flush=True); time.sleep(600)"
)


def staging_names(parent: Path) -> list[str]:
    """The ``.staging*`` entries directly in ``parent``, sorted."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".staging"))


def left_by_a_killed_writer(parent: Path, kind: str = "") -> str:
    """The name of the staging directory a SIGKILLed writer left in ``parent``."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(parent), kind], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    name = proc.stdout.readline().strip()
    proc.kill()
    proc.wait(30)
    proc.stdout.close()
    assert name and name in staging_names(parent), name
    return name
