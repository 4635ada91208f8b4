"""The optional C accelerators (scripts/build_accel.py builds them in place at
`make install`): each module here has a pure-Python twin that runs when it is missing
(the zipapp, a machine with no compiler) or when OSQUERY_AUDIT_EXT_PURE_PYTHON is set."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

PURE_PYTHON_ENV = "OSQUERY_AUDIT_EXT_PURE_PYTHON"


def compiled(name: str) -> ModuleType | None:
    """The compiled module `name` (e.g. "osquery_audit_ext.events._rowsfast"), or None."""
    if os.environ.get(PURE_PYTHON_ENV):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None
