"""The built .deb (and .rpm) as a site receives it: metadata, files, owners and modes,
conffiles, dependencies, maintainer scripts, and lintian's verdict."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.e2e.packaging.pkgtools import REPO, Built, run
from tests.support.prereq import need_tool

pytestmark = pytest.mark.slow


def _fields(deb: Path) -> dict[str, str]:
    out = run("dpkg-deb", "-f", deb).stdout
    fields: dict[str, str] = {}
    for line in out.splitlines():
        if line[:1] not in (" ", "\t") and ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _members(deb: Path) -> dict[str, tarfile.TarInfo]:
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as tar:
        return {m.name.removeprefix(".").rstrip("/") or "/": m for m in tar.getmembers()}


@pytest.fixture(scope="module")
def members(built: Built) -> dict[str, tarfile.TarInfo]:
    return _members(built.deb)


def test_file_name_and_control_fields(built: Built) -> None:
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert built.deb.name == f"headframe_{built.version}_{arch}.deb"
    fields = _fields(built.deb)
    assert fields["Package"] == "headframe"
    assert fields["Version"] == built.version
    assert fields["Architecture"] == arch
    assert (
        built.extras in fields["Description"]
        or built.extras in run("dpkg-deb", "-I", built.deb).stdout
    )
    depends = [d.strip() for d in fields["Depends"].split(",")]
    # The venv's compiled parts need exactly this interpreter and at least this glibc.
    assert "python3 (>= 3.11)" in depends
    assert re.fullmatch(r"python3\.\d+", depends[1]), depends
    assert any(re.fullmatch(r"libc6 \(>= 2\.\d+\)", d) for d in depends), depends


def test_conffiles_and_maintainer_scripts(built: Built, tmp_path: Path) -> None:
    run("dpkg-deb", "-e", built.deb, tmp_path / "control")
    conffiles = (tmp_path / "control" / "conffiles").read_text().split()
    assert conffiles == ["/etc/headframe/headframe.toml"]
    for script in ("postinst", "prerm", "postrm"):
        path = tmp_path / "control" / script
        assert path.stat().st_mode & 0o111, f"{script} not executable"
        run("sh", "-n", path)


def test_files_owners_and_modes(members: dict[str, tarfile.TarInfo]) -> None:
    not_root = [n for n, m in members.items() if (m.uname, m.gname) != ("root", "root")]
    assert not not_root, not_root[:10]
    loose = [n for n, m in members.items() if not m.issym() and m.mode & 0o022 and not m.isdir()]
    assert not loose, f"group/world-writable: {loose[:10]}"
    setid = [n for n, m in members.items() if m.mode & 0o6000]
    assert not setid, setid
    expected_modes = {
        "/lib/systemd/system/headframe.service": 0o644,
        "/etc/headframe/headframe.toml": 0o644,
        "/usr/lib/sysusers.d/headframe.conf": 0o644,
        "/etc/headframe/credentials": 0o700,
        "/usr/share/doc/headframe/copyright": 0o644,
        "/usr/share/lintian/overrides/headframe": 0o644,
    }
    for name, mode in expected_modes.items():
        assert name in members, f"{name} missing from the package"
        assert members[name].mode & 0o7777 == mode, f"{name}: {oct(members[name].mode)}"
    script = members["/opt/headframe/bin/headframe"]
    assert script.isfile() and script.mode & 0o755 == 0o755
    assert members["/usr/bin/headframe"].isfile()
    assert members["/usr/bin/headframe"].mode & 0o7777 == 0o755
    python = members["/opt/headframe/bin/python3.11"]
    assert python.issym() and python.linkname == "/usr/bin/python3.11"
    # Bytecode is compiled on the target by postinst, never shipped.
    assert not [n for n in members if n.endswith(".pyc") or "__pycache__" in n]
    so_exec = [n for n, m in members.items() if ".so" in n and m.isfile() and m.mode & 0o111]
    assert not so_exec, so_exec[:5]


def test_shipped_unit_profiles_and_config_are_the_repos(
    built: Built, members: dict[str, tarfile.TarInfo], tmp_path: Path
) -> None:
    run("dpkg-deb", "-x", built.deb, tmp_path / "root")
    root = tmp_path / "root"
    unit = root / "lib/systemd/system/headframe.service"
    assert unit.read_text() == (REPO / "systemd/headframe.service").read_text()
    assert (root / "etc/headframe/headframe.toml").read_text() == (
        REPO / "packaging/headframe.toml"
    ).read_text()
    for profile in (REPO / "device_profiles").glob("*.toml"):
        shipped = root / "usr/share/headframe/device_profiles" / profile.name
        assert shipped.read_bytes() == profile.read_bytes(), profile.name
    wrapper = (root / "usr/bin/headframe").read_text()
    assert "exec /opt/headframe/bin/headframe" in wrapper
    # The console script runs the venv's interpreter at its installed path.
    shebang = (root / "opt/headframe/bin/headframe").read_text().splitlines()[0]
    assert shebang == "#!/opt/headframe/bin/python"


def test_lintian_reports_no_errors(built: Built) -> None:
    need_tool("lintian")
    out = run("lintian", "--tag-display-limit", "0", built.deb, check=False, timeout=900)
    errors = [line for line in out.stdout.splitlines() if line.startswith("E:")]
    assert not errors, "\n".join(errors[:40])
    # Exit status 2 means lintian itself failed (not a tag): that must not pass silently.
    assert out.returncode in (0, 1), out.stderr


def test_rpm_metadata(built: Built) -> None:
    need_tool("rpm")
    assert built.rpm is not None
    assert run("rpm", "-qp", "--qf", "%{NAME} %{VERSION}-%{RELEASE}", built.rpm).stdout == (
        f"headframe {built.version}"
    )
    requires = run("rpm", "-qpR", built.rpm).stdout.split("\n")
    assert "/usr/bin/python3.11" in requires
    assert any(r.startswith("glibc >= 2.") for r in requires), requires
    assert run("rpm", "-qpc", built.rpm).stdout.split() == ["/etc/headframe/headframe.toml"]
    listing = run("rpm", "-qpl", built.rpm).stdout.split()
    for path in (
        "/usr/lib/systemd/system/headframe.service",
        "/usr/bin/headframe",
        "/opt/headframe/bin/headframe",
        "/usr/lib/sysusers.d/headframe.conf",
    ):
        assert path in listing, path
    owners = run("rpm", "-qp", "--qf", "[%{FILEUSERNAME}:%{FILEGROUPNAME}\n]", built.rpm)
    assert set(owners.stdout.split()) == {"root:root"}
    scripts = run("rpm", "-qp", "--scripts", built.rpm).stdout
    for phase in ("postinstall", "preuninstall", "postuninstall"):
        assert f"{phase} scriptlet" in scripts, phase
