"""Run a command under MemoryDenyWriteExecute as systemd would, without systemd.

systemd 252 (Debian 12) implements ``MemoryDenyWriteExecute=yes`` with a seccomp filter
that answers EPERM to mmap() with PROT_WRITE|PROT_EXEC, to mprotect()/pkey_mprotect()
with PROT_EXEC, and to shmat() with SHM_EXEC (systemd.exec(5)). Newer systemd uses the
kernel's prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN) when the kernel has it (Linux 6.3+).
This helper installs either one and execs the command, so the packaging tests can run
real inference under the same rule the unit would impose:

    python mdwe_exec.py --mode seccomp -- python -c '...'
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
SHM_EXEC = 0o100000

# arch -> (AUDIT_ARCH, mmap, mprotect, pkey_mprotect, shmat)
ARCHES = {
    "x86_64": (0xC000003E, 9, 10, 329, 30),
    "aarch64": (0xC00000B7, 222, 226, 288, 196),
}

LD_ABS_W = 0x20
JEQ_K = 0x15
JSET_K = 0x45
JA = 0x05
AND_K = 0x54
RET_K = 0x06
ARG2_LOW = 16 + 8 * 2  # seccomp_data.args[2], low 32 bits (little-endian)


def _filter() -> bytes:
    audit_arch, mmap, mprotect, pkey_mprotect, shmat = ARCHES[platform.machine()]
    deny = SECCOMP_RET_ERRNO | EPERM
    # (code, jt, jf, k); jumps are relative to the next instruction and only go forward.
    prog = [
        (LD_ABS_W, 0, 0, 4),  # 0: arch
        (JEQ_K, 0, 14, audit_arch),  # 1: foreign ABI -> allow (the unit sets native only)
        (LD_ABS_W, 0, 0, 0),  # 2: syscall number
        (JEQ_K, 4, 0, mmap),  # 3 -> 8
        (JEQ_K, 6, 0, mprotect),  # 4 -> 11
        (JEQ_K, 5, 0, pkey_mprotect),  # 5 -> 11
        (JEQ_K, 6, 0, shmat),  # 6 -> 13
        (JA, 0, 0, 8),  # 7 -> 16 allow
        (LD_ABS_W, 0, 0, ARG2_LOW),  # 8: mmap prot
        (AND_K, 0, 0, PROT_WRITE | PROT_EXEC),  # 9
        (JEQ_K, 4, 5, PROT_WRITE | PROT_EXEC),  # 10: W+X -> deny
        (LD_ABS_W, 0, 0, ARG2_LOW),  # 11: mprotect prot
        (JSET_K, 2, 3, PROT_EXEC),  # 12: any PROT_EXEC -> deny
        (LD_ABS_W, 0, 0, ARG2_LOW),  # 13: shmat flags
        (JSET_K, 0, 1, SHM_EXEC),  # 14: SHM_EXEC -> deny
        (RET_K, 0, 0, deny),  # 15
        (RET_K, 0, 0, SECCOMP_RET_ALLOW),  # 16
    ]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


def _prctl(libc: ctypes.CDLL, *args: int | ctypes.c_void_p) -> None:
    if libc.prctl(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl{args[:1]}: {os.strerror(err)}")


def install(mode: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.restype = ctypes.c_int
    if mode == "prctl":
        _prctl(libc, PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)
        return
    code = _filter()
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(code) // 8, ctypes.addressof(buf))
    _prctl(libc, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp filter: {os.strerror(err)}")


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[0] != "--mode" or argv[2] != "--":
        sys.exit("usage: mdwe_exec.py --mode seccomp|prctl -- COMMAND [ARGS...]")
    install(argv[1])
    os.execvp(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
