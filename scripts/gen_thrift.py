#!/usr/bin/env python3
"""Generate osquery_audit_ext/sdk/osquery_thrift/ from osquery_audit_ext/sdk/osquery.thrift.

The Python bindings of osquery's extension interface, made by Debian's thrift-compiler (the
version pinned below: another version writes other code). A current generator writes the
`thrift_spec` that thrift's C-accelerated binary protocol (fastbinary) needs, which the
bindings shipped in osquery-python lack. The generated package is committed, so neither CI
nor users need the compiler; run this again after editing the .thrift file:
`python3 scripts/gen_thrift.py` (`--check` only reports whether the package is current).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from generated import write_or_check  # this folder is on sys.path when run as a script

THRIFT_VERSION = "0.17.0"  # Debian bookworm's thrift-compiler
ROOT = Path(__file__).resolve().parent.parent
IDL = ROOT / "osquery_audit_ext" / "sdk" / "osquery.thrift"
OUT_DIR = ROOT / "osquery_audit_ext" / "sdk" / "osquery_thrift"
PACKAGE_PATH = ("osquery_audit_ext", "sdk", "osquery_thrift")  # the IDL's `namespace py`


def compiler_version(thrift: str) -> str:
    out = subprocess.run([thrift, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"(\d+\.\d+\.\d+)", out.stdout)
    return match.group(1) if match else "unknown"


def generate(thrift: str) -> dict[str, str]:
    """The generated modules (file name -> text); the *-remote CLI scripts are left out."""
    with tempfile.TemporaryDirectory(prefix="gen-thrift-") as tmp:
        subprocess.run([thrift, "--gen", "py", "-out", tmp, str(IDL)], check=True)
        package = Path(tmp).joinpath(*PACKAGE_PATH)
        return {path.name: path.read_text(encoding="ascii") for path in package.glob("*.py")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    parser.add_argument(
        "--check", action="store_true", help="only report whether the package is current"
    )
    args = parser.parse_args(argv)
    thrift = shutil.which("thrift")
    if thrift is None:
        print("thrift not found (Debian package thrift-compiler)", file=sys.stderr)
        return 2
    version = compiler_version(thrift)
    if version != THRIFT_VERSION:
        print(
            f"thrift {version} found, the bindings are pinned to {THRIFT_VERSION}", file=sys.stderr
        )
        return 2
    return write_or_check(args.out, generate(thrift), check=args.check, what="Thrift bindings")


if __name__ == "__main__":
    sys.exit(main())
