"""Whether this machine should have the compiled row builders (scripts/build_accel.py):
tests run on both the pure-Python and the compiled versions, and the compiled one is
skipped only where it cannot be built."""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from pathlib import Path

import pytest

from osquery_audit_ext.events import rows

BUILD_ACCEL = Path(__file__).resolve().parents[2] / "scripts" / "build_accel.py"
IMPLEMENTATIONS = ("python", "compiled")


def why_not_built() -> str | None:
    """Why the compiled version is missing here (a skip reason), or None if it is not."""
    if os.environ.get("OSQUERY_AUDIT_EXT_PURE_PYTHON"):
        return "OSQUERY_AUDIT_EXT_PURE_PYTHON is set"
    spec = importlib.util.spec_from_file_location("build_accel", BUILD_ACCEL)
    assert spec is not None and spec.loader is not None
    build_accel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_accel)
    if build_accel.compiler() is None:
        return "no C compiler to build events/_rowsfast.c"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers to build events/_rowsfast.c"
    return None


def require(implementation: str) -> None:
    """Skip (where it cannot be built) or fail (where it should have been) when the
    implementation asked for is not here."""
    if implementation != "compiled" or rows.ACCELERATED:
        return
    reason = why_not_built()
    if reason is not None:
        pytest.skip(f"compiled row builders: {reason}")
    pytest.fail("events/_rowsfast is not built though it can be: run scripts/build_accel.py")
