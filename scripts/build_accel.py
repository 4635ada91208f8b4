"""Compile the package's optional C accelerators in place (`make install` runs this).

Every `osquery_audit_ext/**/_*.c` is one CPython extension module beside its source
(events/_rowsfast.c -> osquery_audit_ext/events/_rowsfast<EXT_SUFFIX>), compiled for the
interpreter running this script. The Python code imports each one if it is there and runs
its own pure-Python version otherwise (the zipapp, a machine with no compiler), so a missing
compiler or Python headers is a note, not an error; a source that does not compile is an
error. A module is rebuilt only when its source, or a shared header (`osquery_audit_ext/**/_*.h`,
which the sources include), is newer.

    python scripts/build_accel.py [--force] [--clean]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "osquery_audit_ext"
FLAGS = (
    "-O2",
    "-shared",
    "-fPIC",
    "-fno-strict-aliasing",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
)


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("_*.c"))


def headers() -> list[Path]:
    return sorted(PACKAGE.rglob("_*.h"))


def module_path(source: Path) -> Path:
    return source.with_name(source.stem + sysconfig.get_config_var("EXT_SUFFIX"))


def compiler() -> str | None:
    for name in (os.environ.get("CC"), "gcc", "cc"):
        if name and shutil.which(name):
            return name
    return None


def build(source: Path, cc: str, include: str) -> None:
    """Compile `source` to a temporary file, then rename it over the module (a process that
    has the old one loaded keeps its copy)."""
    target = module_path(source)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        built = Path(work) / target.name
        command = [cc, *FLAGS, f"-I{include}", str(source), "-o", str(built)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"build_accel: {source.relative_to(ROOT)} does not compile")
        os.replace(built, target)
    print(f"build_accel: built {target.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--clean", action="store_true", help="remove the built modules")
    args = parser.parse_args(argv)
    if args.clean:
        for source in sources():
            module_path(source).unlink(missing_ok=True)
        return 0
    newest_header = max((header.stat().st_mtime for header in headers()), default=0.0)
    stale = [
        source
        for source in sources()
        if args.force
        or not module_path(source).exists()
        or module_path(source).stat().st_mtime < max(source.stat().st_mtime, newest_header)
    ]
    if not stale:
        return 0
    cc = compiler()
    include = sysconfig.get_paths()["include"]
    if cc is None or not (Path(include) / "Python.h").exists():
        missing = "a C compiler" if cc is None else f"Python headers ({include}/Python.h)"
        print(f"build_accel: no {missing}: the pure-Python versions run instead")
        return 0
    for source in stale:
        build(source, cc, include)
    return 0


if __name__ == "__main__":
    sys.exit(main())
