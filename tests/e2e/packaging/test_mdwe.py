"""MemoryDenyWriteExecute= is on in the unit only if every runtime we ship works under it.

systemd is not PID 1 on CI machines, so instead of `systemd-run -p
MemoryDenyWriteExecute=yes` the inference runs under mdwe_exec.py, which installs the very
rule systemd 252 installs (a seccomp filter; systemd.exec(5)) or the kernel's
PR_SET_MDWE that newer systemd uses. Results and the decision: docs/packaging.md.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.packaging.unitfile import service

HERE = Path(__file__).resolve().parent
PY = sys.executable


def _under_mdwe(mode: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, str(HERE / "mdwe_exec.py"), "--mode", mode, "--", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mdwe") / "probe.onnx"
    subprocess.run([PY, str(HERE / "mdwe_probe.py"), "write-onnx", str(path)], check=True)
    return path


def _gguf_model(tmp: Path) -> Path | None:
    try:
        from tests.support.gguf_models import write_llama_gguf
    except ImportError:
        return None
    return write_llama_gguf(tmp / "probe.gguf", size="tiny")


@pytest.mark.parametrize("mode", ["seccomp", "prctl"])
def test_the_emulation_refuses_writable_executable_memory(mode: str) -> None:
    # Positive control: without it a "runtime works under MDWE" result would mean nothing.
    probe = (
        "import mmap\n"
        "mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE)\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "except OSError:\n"
        "    print('refused')\n"
    )
    result = _under_mdwe(mode, PY, "-c", probe)
    if mode == "prctl" and "Invalid argument" in result.stderr:
        pytest.skip("kernel older than 6.3: no PR_SET_MDWE")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "refused"


def test_unit_sets_mdwe_only_if_every_runtime_survives_it(onnx_model: Path, tmp_path: Path) -> None:
    results: dict[str, bool] = {}
    for runtime in ("onnx", "openvino"):
        run = _under_mdwe("seccomp", PY, str(HERE / "mdwe_probe.py"), runtime, str(onnx_model))
        results[runtime] = run.returncode == 0 and f"{runtime} ok" in run.stdout
        if runtime == "openvino" and not results[runtime]:
            # The known reason: the CPU plugin's JIT cannot mprotect its code executable.
            assert "can't protect" in run.stderr or run.returncode < 0, run.stderr[-2000:]
    if importlib.util.find_spec("llama_cpp") is not None:
        gguf = _gguf_model(tmp_path)
        if gguf is not None:
            run = _under_mdwe("seccomp", PY, str(HERE / "mdwe_probe.py"), "llama", str(gguf))
            results["llama"] = run.returncode == 0 and "llama ok" in run.stdout

    # onnxruntime's CPU provider uses precompiled kernels and must keep working.
    assert results["onnx"], "onnxruntime failed under MemoryDenyWriteExecute"
    print("MDWE results:", results)
    mdwe_on = service().get("MemoryDenyWriteExecute", ["no"])[-1] == "yes"
    failing = sorted(name for name, ok in results.items() if not ok)
    if mdwe_on:
        assert not failing, f"unit sets MemoryDenyWriteExecute=yes but {failing} fail under it"
    else:
        assert failing, f"every runtime passes under MDWE ({results}): turn it on in the unit"
