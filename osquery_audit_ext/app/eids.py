"""The `eids` document of the state directory: {table: first eid the next run may use}, so
eids never go back across restarts (the consumer-cursor work reserves them in blocks; this
pair is the one place that reads and writes the document)."""

from __future__ import annotations

from .state import StateDir

DOCUMENT = "eids"


def load_eids(state: StateDir) -> dict[str, int]:
    """{table: next eid}; an absent or malformed document gives {} (eids from 1)."""
    document = state.load(DOCUMENT)
    if not isinstance(document, dict):
        return {}
    return {
        table: value
        for table, value in document.items()
        if isinstance(table, str)
        and isinstance(value, int)
        and not isinstance(value, bool)
        and value >= 1
    }


def save_eids(state: StateDir, eids: dict[str, int]) -> None:
    state.save(DOCUMENT, dict(eids))
