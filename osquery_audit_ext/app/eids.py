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
from collections.abc import Callable, Mapping

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
        floor: Callable[[str], int] = lambda _table: 0,
        block: int = EID_BLOCK,
    ) -> None:
        """`floor(table)`: an eid this run's eids must be above (the furthest cursor, in
        case the marks were lost while the cursors were not)."""
        self._state = state
        self._marks = load_eid_marks(state)  # what is on disk (other tables' marks are kept)
        self._floor = floor
        self._block = block
        self._lock = threading.Lock()
        self._start: dict[str, int] = {}
        self._reserved: dict[str, int] = {}  # nothing of this run is reserved yet

    def start(self, table: str) -> int:
        """The first eid `table` hands out in this run (its ring's next_eid)."""
        with self._lock:
            return self._start_locked(table)

    def _start_locked(self, table: str) -> int:
        if table not in self._start:
            first = max(self._marks.get(table, 1), self._floor(table) + 1)
            self._start[table] = first
            self._reserved[table] = first
        return self._start[table]

    def reserve(self, rings: Mapping[str, EventRing], incoming: int = 0) -> None:
        """Make the persisted marks cover `incoming` more events on every ring.

        Call before appending them: an eid is handed out only below a mark on disk.
        """
        with self._lock:
            # The common case, once per reader batch: every ring well below its mark.
            start, reserved = self._start, self._reserved
            for table, ring in rings.items():
                first = start.get(table)
                if first is None or max(ring.next_eid, first) + incoming >= reserved[table]:
                    break
            else:
                return
            wanted = {
                table: max(ring.next_eid, self._start_locked(table)) + incoming
                for table, ring in rings.items()
            }
            if all(wanted[t] < self._reserved[t] for t in wanted):
                return
            marks = {t: max(self._reserved[t], wanted[t] + self._block) for t in wanted}
            save_eid_marks(self._state, {**self._marks, **marks})
            self._marks.update(marks)  # what is on disk now
            self._reserved.update(marks)
