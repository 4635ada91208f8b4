"""Build osquery-audit-ext_<version>_all.deb with dpkg-deb, offline, from the .ext.

The package installs the .ext (scripts/build_ext.py, #!/usr/bin/python3 by default) root-owned
0755 as /usr/local/lib/osquery/osquery_audit_ext.ext (where the README's deployment section puts
it), the commented default config packaging/deb/osquery_audit_ext.toml as the conffile
/etc/osquery/osquery_audit_ext.toml (0600), and the maintainer scripts packaging/deb/postinst
(lists the .ext in /etc/osquery/extensions.load, once) and postrm (takes it out on remove and
purge). Files are root:root whoever builds (dpkg-deb --root-owner-group); mtimes are clamped to
SOURCE_DATE_EPOCH (default: the last commit's time, else 0) so a build is reproducible.

    python scripts/build_deb.py [--output-dir DIR] [--python /usr/bin/python3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from build_ext import build as build_ext  # this folder is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging" / "deb"
PACKAGE = "osquery-audit-ext"
EXT_PATH = "usr/local/lib/osquery/osquery_audit_ext.ext"
CONFIG_PATH = "etc/osquery/osquery_audit_ext.toml"
# tomllib is in the standard library from 3.11; before, the zipapp imports python3-tomli.
DEPENDS = "python3 (>= 3.9), python3 (>= 3.11) | python3-tomli"
DESCRIPTION = """\
Linux kernel audit tables for osquery (extension)
 An osquery extension serving process_events, socket_events, audit_rules,
 audit_status and more from its own audit netlink reader. osqueryd autoloads
 it from /etc/osquery/extensions.load; its configuration is
 /etc/osquery/osquery_audit_ext.toml."""


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from osquery_audit_ext import __version__

    return __version__


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def control(installed_kib: int) -> str:
    return (
        f"Package: {PACKAGE}\n"
        f"Version: {version()}\n"
        "Architecture: all\n"
        "Section: admin\n"
        "Priority: optional\n"
        "Maintainer: osquery-audit-ext developers <osquery-audit-ext@localhost>\n"
        f"Installed-Size: {installed_kib}\n"
        f"Depends: {DEPENDS}\n"
        "Enhances: osquery\n"
        f"Description: {DESCRIPTION}\n"
    )


def stage(staging: Path, interpreter: str) -> None:
    """The package's tree: files with their modes, then DEBIAN/ (control, conffiles, scripts)."""
    ext = staging / EXT_PATH
    ext.parent.mkdir(parents=True)
    build_ext(ext, interpreter)
    os.chmod(ext, 0o755)
    config = staging / CONFIG_PATH
    config.parent.mkdir(parents=True)
    shutil.copyfile(PACKAGING / "osquery_audit_ext.toml", config)
    os.chmod(config, 0o600)
    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    debian = staging / "DEBIAN"
    debian.mkdir()
    (debian / "control").write_text(control((size + 1023) // 1024))
    (debian / "conffiles").write_text(f"/{CONFIG_PATH}\n")
    for script in ("postinst", "postrm"):
        shutil.copyfile(PACKAGING / script, debian / script)
        os.chmod(debian / script, 0o755)
    for path in [staging, *staging.rglob("*")]:
        if path.is_dir():
            os.chmod(path, 0o755)


def build(output_dir: Path, interpreter: str) -> Path:
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("build_deb: dpkg-deb is not installed (Debian package dpkg)")
    output_dir.mkdir(parents=True, exist_ok=True)
    output = output_dir / f"{PACKAGE}_{version()}_all.deb"
    epoch = source_date_epoch()
    with tempfile.TemporaryDirectory(prefix="oae-deb-") as directory:
        staging = Path(directory) / "root"
        staging.mkdir()
        stage(staging, interpreter)
        for path in [staging, *staging.rglob("*")]:
            os.utime(path, (epoch, epoch), follow_symlinks=False)
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(staging), str(output)],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(ROOT), help="where the .deb goes")
    parser.add_argument(
        "--python",
        default="/usr/bin/python3",
        help="the #! interpreter of the .ext on the installed system (default /usr/bin/python3)",
    )
    args = parser.parse_args(argv)
    if not os.path.isabs(args.python) or not os.access(args.python, os.X_OK):
        parser.error(f"--python must be an absolute path to an executable: {args.python}")
    output = build(Path(args.output_dir), args.python)
    print(f"build_deb: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
