"""Eids that never go back: a per-table reservation kept in the state directory.

A consumer's cursor is an eid; if eids restarted at 1 after a restart or a reboot, every
cursor would sit above the new events and skip them silently (osquery#8524). So each run
starts at the mark the previous run reserved, and a run may hand out an eid only once the
mark above it is on disk. Marks are reserved a block at a time, so the document is written
once per EID_BLOCK events, not per event; a restart leaves at most one block unused.

The state document `eids` is {table: first eid the next run may use}.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from ..events.ring import EventRing
from .state import StateDir

EIDS_DOC = "eids"
EID_BLOCK = 65_536


def load_eid_marks(state: StateDir) -> dict[str, int]:
    """{table: first eid the next run may use}, from the state directory."""
    document = state.load(EIDS_DOC)
    if not isinstance(document, dict):
        return {}
    marks = {}
    for table, mark in document.items():
        if isinstance(mark, int) and not isinstance(mark, bool) and mark >= 1:
            marks[str(table)] = mark
    return marks


def save_eid_marks(state: StateDir, marks: Mapping[str, int]) -> None:
    """Persist the marks atomically (the old document or the new one survives a crash)."""
    state.save(EIDS_DOC, dict(marks))


class EidReservation:
    """Where each table's eids start in this run, and the persisted mark ahead of them."""

    def __init__(
        self,
        state: StateDir,
        tables: Iterable[str],
        floors: Mapping[str, int] | None = None,
        block: int = EID_BLOCK,
    ) -> None:
        """`floors`: per table, an eid this run must start at or above (the furthest
        cursor, in case the marks were lost while the cursors were not)."""
        marks = load_eid_marks(state)
        self._state = state
        self._block = block
        self._lock = threading.Lock()
        self.run_start = {t: max(marks.get(t, 1), (floors or {}).get(t, 0) + 1, 1) for t in tables}
        self._others = {t: m for t, m in marks.items() if t not in self.run_start}
        self._reserved = dict(self.run_start)  # nothing of this run is reserved yet

    def reserve(self, rings: Mapping[str, EventRing], incoming: int = 0) -> None:
        """Make the persisted marks cover `incoming` more events on every ring.

        Call before appending them: an eid is handed out only below a mark on disk.
        """
        with self._lock:
            wanted = {
                table: max(ring.last_eid + 1, self.run_start[table]) + incoming
                for table, ring in rings.items()
            }
            if all(wanted[t] < self._reserved[t] for t in wanted):
                return
            marks = {t: max(self._reserved[t], wanted[t] + self._block) for t in wanted}
            save_eid_marks(self._state, {**self._others, **marks})
            self._reserved.update(marks)

    @property
    def reserved(self) -> dict[str, int]:
        with self._lock:
            return dict(self._reserved)
