"""The `eids` document of the state directory: {table: first eid the next run may use}, so
eids never go back across restarts.

The consumer-cursor work (issue 10) reserves eids in blocks through this same pair of
functions; the durable ring only reads the marks at start and leaves them ahead of its eids
at exit.
"""

from __future__ import annotations

from collections.abc import Mapping

from .state import StateDir

EIDS_DOC = "eids"


def load_eid_marks(state: StateDir) -> dict[str, int]:
    """{table: first eid the next run may use}; absent or malformed entries are left out."""
    document = state.load(EIDS_DOC)
    if not isinstance(document, dict):
        return {}
    return {
        str(table): mark
        for table, mark in document.items()
        if isinstance(mark, int) and not isinstance(mark, bool) and mark >= 1
    }


def save_eid_marks(state: StateDir, marks: Mapping[str, int]) -> None:
    """Replace the marks atomically (the old document or the new one survives a crash)."""
    state.save(EIDS_DOC, dict(marks))
