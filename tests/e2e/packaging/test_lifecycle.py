"""The .deb on this machine, as a site runs it: install (no systemd as PID 1 here, so the
maintainer scripts must cope), `headframe detect`, serve-and-infer as the service user from
the installed files, upgrade over itself keeping configuration and the model store, remove,
purge keeping the store, purge on request leaving nothing behind.

The tests run in file order and share the machine's package state; a lock file keeps two
test sessions on one machine from installing at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from tests.e2e.packaging.pkgtools import Built, run
from tests.e2e.packaging.test_unit import MAX_EXPOSURE, exposure, verify
from tests.support.prereq import missing, need_tool

pytestmark = pytest.mark.slow

LOCK = Path("/var/tmp/headframe-packaging-tests.lock")
# Set while this suite has the package installed: a crashed run leaves it behind, and the
# next run may then purge what it installed (and nothing a person installed).
MARKER = Path("/var/tmp/headframe-packaging-tests.installed")
UNIT = Path("/lib/systemd/system/headframe.service")
STATE, CACHE, ETC = (
    Path("/var/lib/headframe"),
    Path("/var/cache/headframe"),
    Path("/etc/headframe"),
)
LOGS = Path("/var/log/headframe")  # nothing creates it: logs go to the journal
EVERYTHING = [Path("/opt/headframe"), Path("/usr/bin/headframe"), UNIT, ETC, STATE, CACHE, LOGS]
DPKG = ("dpkg", "--force-unsafe-io")  # no fsync per file: same result, minutes faster
# What an administrator's shell has: none of the test suite's isolation variables.
SITE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def site(*cmd: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(*cmd, check=check, env=SITE_ENV)


def _installed() -> bool:
    out = run("dpkg-query", "-W", "-f", "${db:Status-Status}", "headframe", check=False)
    return out.returncode == 0 and out.stdout.strip() not in ("", "not-installed")


def _purge(*, state: bool) -> None:
    env = {**SITE_ENV, "HEADFRAME_PURGE_STATE": "1" if state else "0"}
    run(*DPKG, "--purge", "headframe", env=env)


@pytest.fixture(scope="module")
def machine() -> Iterator[None]:
    # CI runs as root (.ci/run) with dpkg: there a missing one is a broken set-up, not a skip.
    if os.geteuid() != 0:
        missing("installs a package: needs root")
    need_tool("dpkg")
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed():
            if not MARKER.exists():
                pytest.skip("a headframe package is installed here already; not touching it")
            _purge(state=True)
        MARKER.touch()
        try:
            yield
        finally:
            if _installed():
                _purge(state=True)
            MARKER.unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _altered_copy(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy, symlinks=True)
    return copy


def test_offline_install_refuses_an_altered_bundle(
    machine: None, bundle: Path, tmp_path: Path
) -> None:
    damaged = _altered_copy(bundle, tmp_path / "damaged")
    deb = next((damaged / "packages").glob("*.deb"))
    data = bytearray(deb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    deb.write_bytes(bytes(data))
    out = site(damaged / "install.sh", check=False)
    assert out.returncode != 0 and "checksum mismatch" in out.stderr
    assert not _installed()

    smuggled = _altered_copy(bundle, tmp_path / "smuggled")
    (smuggled / "packages" / "extra.deb").write_bytes(b"not ours")
    out = site(smuggled / "install.sh", check=False)
    assert out.returncode != 0 and "packages/extra.deb" in out.stderr
    assert not _installed()


def test_install_without_systemd_running(machine: None, built: Built) -> None:
    site(*DPKG, "-i", built.deb)
    user = pwd.getpwnam("headframe")
    assert user.pw_uid < 1000 and user.pw_shell.endswith("nologin")
    assert not LOGS.exists()
    for directory in (STATE, CACHE):
        st = directory.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o750), directory
    assert stat.S_IMODE((ETC / "credentials").stat().st_mode) == 0o700
    version = site("/usr/bin/headframe", "--version").stdout
    assert version.strip() == f"headframe {built.version.rsplit('-', 1)[0]}"
    # postinst compiled the bytecode (the service cannot write to /opt).
    assert next(Path("/opt/headframe/lib").rglob("runtime/__pycache__/*.pyc"), None)


def test_installed_unit_passes_the_checks(machine: None) -> None:
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze missing (scripts/system-deps.sh installs it)")
    assert verify(UNIT) == ""  # as shipped, ExecStart=/usr/bin/headframe now exists
    assert exposure(UNIT) <= MAX_EXPOSURE


def test_detect_as_the_service_user(machine: None) -> None:
    out = site("runuser", "-u", "headframe", "--", "/usr/bin/headframe", "detect")
    assert out.stdout.strip(), "detect printed nothing"


def test_serve_and_infer_as_the_service_user(machine: None, demo_store: Path) -> None:
    user = pwd.getpwnam("headframe")
    store = STATE / "store"
    shutil.copytree(demo_store, store, dirs_exist_ok=True)
    run("chown", "-R", "headframe:headframe", store)
    port = _free_port()
    # What the unit provides, by hand: systemd's directory variables, a credential, and
    # the notify socket with a watchdog (Type=notify, WatchdogSec=).
    scratch = Path(tempfile.mkdtemp(dir="/var/tmp"))
    config_dir, creds = scratch / "etc", scratch / "credentials"
    try:
        scratch.chmod(0o755)
        config_dir.mkdir(mode=0o755)
        (config_dir / "headframe.toml").write_text(
            f'demo = false\n[api]\nhost = "127.0.0.1"\nport = {port}\n'
        )
        creds.mkdir(mode=0o500)
        (creds / "api-tokens").write_text("smoke-token\n")
        (creds / "api-tokens").chmod(0o400)
        for path in (creds, creds / "api-tokens"):
            os.chown(path, user.pw_uid, user.pw_gid)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(scratch / "notify"))
        (scratch / "notify").chmod(0o777)
        notify.settimeout(1.0)
        env = [
            "PATH=/usr/bin:/bin",
            f"CONFIGURATION_DIRECTORY={config_dir}",
            f"STATE_DIRECTORY={STATE}",
            f"CACHE_DIRECTORY={CACHE}",
            f"CREDENTIALS_DIRECTORY={creds}",
            f"NOTIFY_SOCKET={scratch / 'notify'}",
            "WATCHDOG_USEC=2000000",
        ]
        cmd = ["runuser", "-u", "headframe", "--", "env", "-i", *env, "/usr/bin/headframe"]
        server = subprocess.Popen(
            [*cmd, "serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            _infer_demo(port, demo_store, server)
            messages = _notifications(notify, until=lambda m: "READY=1" in m and "WATCHDOG=1" in m)
            assert "READY=1" in messages and "WATCHDOG=1" in messages, messages
            # ExecReload=/bin/kill -HUP $MAINPID: the daemon itself, not runuser above it.
            (daemon,) = psutil.Process(server.pid).children()
            daemon.send_signal(signal.SIGHUP)
            messages = _notifications(notify, until=_reloaded)
            assert _reloaded(messages), messages
            _infer_demo(port, demo_store, server)  # still serving after the reload
        finally:
            for process in psutil.Process(server.pid).children():
                process.send_signal(signal.SIGTERM)  # what systemctl stop does
            try:
                output, _ = server.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                output, _ = server.communicate()
            notify.close()
        assert server.returncode == 0, f"exit {server.returncode}:\n{output[-3000:]}"
    finally:
        shutil.rmtree(scratch)


def _reloaded(messages: str) -> bool:
    return "READY=1" in messages.partition("RELOADING=1")[2]


def _notifications(sock: socket.socket, until: Callable[[str], bool]) -> str:
    """sd_notify datagrams received until ``until(all so far)`` holds (30 s at most)."""
    received = ""
    deadline = time.monotonic() + 30
    while not until(received) and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            received += sock.recv(4096).decode() + "\n"
    return received


def _infer_demo(port: int, demo_store: Path, server: subprocess.Popen[str]) -> None:
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer smoke-token"}
    deadline = time.monotonic() + 180
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        while True:
            try:
                if client.get("/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, f"the daemon exited:\n{server.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "the installed daemon never became ready"
            time.sleep(0.5)
        golden = np.load(next(demo_store.glob("part-id-reader/*/golden.npz")))
        pixels, labels = golden["pixels"][:32].astype(np.float32), golden["labels"][:32]
        body = {
            "inputs": [
                {
                    "name": "pixels",
                    "shape": list(pixels.shape),
                    "datatype": "FP32",
                    "data": pixels.ravel().tolist(),
                }
            ]
        }
        reply = client.post("/v2/models/part-id-reader/infer", json=body)
        assert reply.status_code == 200, reply.text
        (output,) = [o for o in reply.json()["outputs"] if o["name"] == "probabilities"]
        assert output["shape"] == [32, 10]
        predicted = np.asarray(output["data"]).reshape(32, 10).argmax(axis=1)
        assert (predicted == labels).mean() >= 0.75  # the demo model reads digits


def test_upgrade_over_itself_keeps_config_and_store(machine: None, built: Built) -> None:
    config = ETC / "headframe.toml"
    edited = config.read_text() + "\n# site edit: kept across upgrades\n"
    config.write_text(edited)
    model = STATE / "store" / "kept-by-upgrade.txt"
    model.parent.mkdir(exist_ok=True)
    model.write_text("model bytes")
    uid = pwd.getpwnam("headframe").pw_uid
    site(*DPKG, "--force-confold", "-i", built.deb)
    assert config.read_text() == edited
    assert model.read_text() == "model bytes"
    assert pwd.getpwnam("headframe").pw_uid == uid
    assert site("/usr/bin/headframe", "--version").returncode == 0
    assert not list(ETC.glob("*.dpkg-*"))


def test_remove_keeps_config_and_store(machine: None) -> None:
    site(*DPKG, "--remove", "headframe")
    assert not Path("/opt/headframe").exists() and not Path("/usr/bin/headframe").exists()
    assert not UNIT.exists()
    assert (ETC / "headframe.toml").exists()
    assert (STATE / "store" / "kept-by-upgrade.txt").exists()


def test_purge_keeps_the_store_unless_asked(machine: None) -> None:
    _purge(state=False)
    for gone in (ETC, CACHE, LOGS):
        assert not gone.exists(), gone
    assert (STATE / "store" / "kept-by-upgrade.txt").read_text() == "model bytes"
    pwd.getpwnam("headframe")  # the store's owner stays with it


def test_offline_bundle_installs_over_the_kept_store(machine: None, bundle: Path) -> None:
    had_demo = (STATE / "store" / "part-id-reader").exists()
    out = site(bundle / "install.sh")
    assert _installed()
    assert (STATE / "store" / "kept-by-upgrade.txt").read_text() == "model bytes"
    demo = STATE / "store" / "part-id-reader"
    assert list(demo.glob("*/package.toml")), out.stdout
    assert demo.stat().st_uid == pwd.getpwnam("headframe").pw_uid
    # A model already in the store is the site's: never overwritten by the bundle's copy.
    assert ("left as it is" in out.stdout) == had_demo


def test_offline_install_writes_the_store_only_as_the_service_user(
    machine: None, bundle: Path
) -> None:
    """The store is the service user's: a link planted there (here, the store itself
    pointing at a root-owned directory) must not lead install.sh's root hand elsewhere."""
    assert _installed()
    store, kept = STATE / "store", STATE / "store.kept-by-test"
    store.rename(kept)
    victim = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="headframe-victim-"))
    victim.chmod(0o755)
    try:
        store.symlink_to(victim)
        out = site(bundle / "install.sh", check=False)
        assert out.returncode != 0 and "as the headframe user" in out.stderr, out.stderr
        assert list(victim.iterdir()) == []
        st = victim.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o755)  # not chowned, not chmodded
    finally:
        store.unlink(missing_ok=True)
        kept.rename(store)
        shutil.rmtree(victim)


def test_purge_on_request_leaves_nothing_behind(machine: None) -> None:
    assert _installed()
    (ETC / "credentials" / "api-tokens").write_text("secret\n")
    _purge(state=True)
    left = [p for p in EVERYTHING if p.exists() or p.is_symlink()]
    assert not left, left
    assert not Path("/etc/systemd/system/multi-user.target.wants/headframe.service").exists()
    with pytest.raises(KeyError):
        pwd.getpwnam("headframe")
    assert not _installed()
