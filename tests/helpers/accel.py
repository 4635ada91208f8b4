"""Whether this machine should have the compiled accelerators (scripts/build_accel.py): the
tests of a fast path run on the pure-Python version and on the compiled one, and the
compiled one is skipped only where it cannot be built."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from osquery_audit_ext.accel import PURE_PYTHON_ENV

BUILD_ACCEL = Path(__file__).resolve().parents[2] / "scripts" / "build_accel.py"
IMPLEMENTATIONS = ("python", "compiled")


def why_not_built() -> str | None:
    """Why the compiled versions are missing here (a skip reason), or None if they should
    be here."""
    if os.environ.get(PURE_PYTHON_ENV):
        return f"{PURE_PYTHON_ENV} is set"
    spec = importlib.util.spec_from_file_location("build_accel", BUILD_ACCEL)
    assert spec is not None and spec.loader is not None
    build_accel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_accel)
    if build_accel.compiler() is None:
        return "no C compiler"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers"
    return None


def require(implementation: str, module: object, source: str) -> None:
    """Skip (where it cannot be built) or fail (where it should have been) when the
    compiled `module` (None: not imported) built from `source` is asked for but missing."""
    if implementation != "compiled" or module is not None:
        return
    reason = why_not_built()
    if reason is not None:
        pytest.skip(f"compiled {source}: {reason}")
    pytest.fail(f"{source} is not built though it can be: run scripts/build_accel.py")


@contextlib.contextmanager
def running(implementation: str, module: ModuleType, name: str, source: str) -> Iterator[str]:
    """Run the tests inside on `implementation`: the compiled module `module.<name>` (built
    from `source`; see `require`), or its Python twin ("python": `module.<name>` set to None
    meanwhile)."""
    require(implementation, getattr(module, name), source)
    with pytest.MonkeyPatch.context() as patch:
        if implementation == "python":
            patch.setattr(module, name, None)
        yield implementation
