"""`make deb`: the package's fields and files, a real dpkg install, reinstall, remove and purge
in a throwaway root (dpkg --root, maintainer scripts run chrootless against $DPKG_ROOT), and
the default config checked against the settings' defaults."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from osquery_audit_ext import __version__
from osquery_audit_ext.app.settings import Settings, settings_from_dict
from osquery_audit_ext.sdk._toml import toml

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build_deb.py"
CONFIG = ROOT / "packaging" / "deb" / "osquery_audit_ext.toml"
EXT = "usr/local/lib/osquery/osquery_audit_ext.ext"
EXT_LINE = "/" + EXT
needs_dpkg = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None,
    reason="dpkg/dpkg-deb are not installed (make sysdeps)",
)


def build(directory: Path) -> Path:
    subprocess.run(
        [sys.executable, str(BUILD), "--output-dir", str(directory)],
        check=True,
        capture_output=True,
        timeout=180,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
    )
    (deb,) = directory.glob("*.deb")
    return deb


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (make sysdeps)")
    return build(tmp_path_factory.mktemp("deb"))


def dpkg(root: Path, *args: str) -> None:
    """dpkg on the throwaway root; python3 is not in its database, hence --force-depends."""
    proc = subprocess.run(
        ["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("installing root-owned files with dpkg needs root")
    base = tmp_path / "root"
    for name in ("info", "updates"):
        (base / "var/lib/dpkg" / name).mkdir(parents=True)
    for name in ("status", "available"):
        (base / "var/lib/dpkg" / name).touch()
    yield base


def field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


@needs_dpkg
def test_package_fields_and_files(deb: Path) -> None:
    assert deb.name == f"osquery-audit-ext_{__version__}_all.deb"
    pyproject = toml.loads((ROOT / "pyproject.toml").read_text())
    assert field(deb, "Version") == __version__ == pyproject["project"]["version"]
    assert field(deb, "Architecture") == "all"
    assert field(deb, "Depends").startswith("python3 (>= 3.9)")
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    files = {line.split()[-1]: line.split()[:2] for line in listing.splitlines()}
    assert files[f"./{EXT}"] == ["-rwxr-xr-x", "root/root"]
    assert files["./etc/osquery/osquery_audit_ext.toml"] == ["-rw-------", "root/root"]
    assert {owner for _, owner in files.values()} == {"root/root"}
    control = subprocess.run(
        ["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    assert b"/etc/osquery/osquery_audit_ext.toml\n" in control  # conffiles


@needs_dpkg
def test_build_is_reproducible(deb: Path, tmp_path: Path) -> None:
    assert build(tmp_path).read_bytes() == deb.read_bytes()


@needs_dpkg
def test_install_reinstall_remove_purge(deb: Path, root: Path) -> None:
    load = root / "etc/osquery/extensions.load"
    load.parent.mkdir(parents=True)
    load.write_text("/opt/other/other.ext")  # another extension, no final newline
    dpkg(root, "-i", str(deb))
    ext = root / EXT
    info = ext.stat()
    assert stat.S_IMODE(info.st_mode) == 0o755 and (info.st_uid, info.st_gid) == (0, 0)
    config = root / "etc/osquery/osquery_audit_ext.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert config.read_bytes() == CONFIG.read_bytes()
    assert load.read_text().splitlines() == ["/opt/other/other.ext", EXT_LINE]
    # The installed .ext runs with the system's python3 and nothing else.
    first = ext.read_bytes().split(b"\n", 1)[0]
    assert first == b"#!/usr/bin/python3"
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", str(ext), "rules", "suggest", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--budget" in proc.stdout, proc.stderr
    dpkg(root, "-i", str(deb))  # again: still listed once
    assert load.read_text().splitlines() == ["/opt/other/other.ext", EXT_LINE]
    config.write_text("mode = 'multicast'\n")  # the admin's change survives remove
    dpkg(root, "-r", "osquery-audit-ext")
    assert not ext.exists()
    assert config.read_text() == "mode = 'multicast'\n"
    assert load.read_text().splitlines() == ["/opt/other/other.ext"]
    dpkg(root, "-P", "osquery-audit-ext")
    assert not config.exists()
    assert load.read_text().splitlines() == ["/opt/other/other.ext"]


@needs_dpkg
def test_install_without_extensions_load_creates_it_and_purge_removes_it(
    deb: Path, root: Path
) -> None:
    load = root / "etc/osquery/extensions.load"
    dpkg(root, "-i", str(deb))
    assert load.read_text() == EXT_LINE + "\n"
    dpkg(root, "-P", "osquery-audit-ext")
    assert not load.exists() and not (root / EXT).exists()


def test_default_config_is_the_settings_defaults() -> None:
    """Uncommented, every `# key = value` line of the shipped config gives the built-in
    defaults, and every setting is there (the docs in the file match the code)."""
    text = CONFIG.read_text()
    active = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert active == []  # nothing set: the file documents, the defaults apply
    uncommented = "\n".join(
        line[2:].split("##")[0] for line in text.splitlines() if line.startswith("# ")
    )
    data = toml.loads(uncommented)
    assert dataclasses.replace(settings_from_dict(data), source="") == Settings()
    for section in ("events", "ring", "reader", "state"):
        defaults = getattr(Settings(), section)
        assert set(data[section]) == {f.name for f in dataclasses.fields(defaults)}, section
        assert data[section] == dataclasses.asdict(defaults)
    top = {f.name for f in dataclasses.fields(Settings)} - {"source", "control"}
    assert top <= set(data)
    assert "[control]" in text and "backlog_limit" in text


@needs_dpkg
def test_with_fleets_agent_orbits_extensions_load_too(deb: Path, root: Path) -> None:
    """Under fleetd, Orbit runs osqueryd with /opt/orbit/extensions.load."""
    orbit = root / "opt/orbit/extensions.load"
    orbit.parent.mkdir(parents=True)
    orbit.write_text("/usr/local/bin/other.ext\n")
    dpkg(root, "-i", str(deb))
    assert orbit.read_text().splitlines() == ["/usr/local/bin/other.ext", EXT_LINE]
    assert (root / "etc/osquery/extensions.load").read_text() == EXT_LINE + "\n"
    dpkg(root, "-P", "osquery-audit-ext")
    assert orbit.read_text() == "/usr/local/bin/other.ext\n"
    assert not (root / "etc/osquery/extensions.load").exists()


@needs_dpkg
def test_without_fleets_agent_no_orbit_directory_is_made(deb: Path, root: Path) -> None:
    dpkg(root, "-i", str(deb))
    assert not (root / "opt").exists()
    dpkg(root, "-P", "osquery-audit-ext")
