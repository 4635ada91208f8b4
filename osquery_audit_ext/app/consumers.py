"""Consumer cursors: each scheduled query gets each event of a table once.

osqueryd logs every row an event-based table returns as "added", and core never tells an
extension which scheduled query is running, so without help a pack query at interval 60
over a ring holding an hour of events logs each event about 60 times. A query names itself
instead: `WHERE consumer = 'NAME'`. For each (table, consumer) pair we keep a cursor, the
newest eid that consumer has been given; such a query sees only events after it, and the
cursor then moves to the newest eid held when the query ran (every event it considered,
whether or not its other constraints kept it), so the consumer sees each matching event
exactly once.

Delivery is at most once, never twice: the new cursor is written to the state directory
(atomically, see state.py) *before* the rows are handed back. A crash after the write and
before core has logged the rows loses that one batch for that consumer; a crash before the
write returns nothing and moves nothing. Writing after delivery is impossible (the protocol
has no acknowledgement), and writing at the next query (at least once) would log the last
batch twice after every restart. A failed write fails the query and leaves the cursor where
it was, so the next run gets the same events.

A consumer whose next events were evicted before it asked (ring full or expired) is told
through `missed` (audit_consumers). Consumers unused for longer than the ring's expiry are
forgotten, which keeps this state bounded: everything such a consumer could still be owed
has expired from the ring anyway.

Pure: no kernel, the clock is injected; the ring is any EventRing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass
from typing import Callable

from ..events.ring import Entry, EventRing
from .state import StateDir

CURSORS_DOC = "cursors"  # the state document: {table: {consumer: ConsumerState as a dict}}


@dataclass
class ConsumerState:
    """One consumer of one table."""

    cursor: int = 0  # the newest eid this consumer has been given (or skipped past)
    delivered: int = 0  # events returned to it
    missed: int = 0  # events evicted from the ring before it asked for them
    last_read: float = 0.0  # unix time of its last query


@dataclass(frozen=True)
class ConsumerRow:
    table: str
    consumer: str
    state: ConsumerState
    pending: int  # events held after its cursor


@dataclass(frozen=True)
class Narrowing:
    """The other constraints of a consumer query (inclusive bounds; None = unbounded)."""

    time_min: float | None = None
    time_max: float | None = None
    eid_min: int | None = None
    eid_max: int | None = None
    pids: Collection[int] | None = None

    def keeps(self, eid: int, when: int | None, pid: int | None) -> bool:
        if self.eid_min is not None and eid < self.eid_min:
            return False
        if self.eid_max is not None and eid > self.eid_max:
            return False
        if self.time_min is not None or self.time_max is not None:
            if when is None:
                return False
            if self.time_min is not None and when < self.time_min:
                return False
            if self.time_max is not None and when > self.time_max:
                return False
        return self.pids is None or pid in self.pids


class ConsumerCursors:
    """Every (table, consumer) cursor, persisted in the state directory's `cursors` document.

    `expiry` is the rings' expiry in seconds: a consumer not seen for that long is
    forgotten (0 keeps consumers forever, as the ring then keeps events forever).
    """

    def __init__(
        self, state: StateDir, expiry: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._state = state
        self.expiry = expiry
        self._clock = clock
        # One lock for a whole read (ring slice, new cursor, save): reads of different
        # consumers would queue on the save's fsync anyway, and one lock makes "never the
        # same event twice" for concurrent reads of one consumer evident.
        self._lock = threading.Lock()
        self._cursors: dict[str, dict[str, ConsumerState]] = {}
        self._load()

    def _load(self) -> None:
        document = self._state.load(CURSORS_DOC)
        if not isinstance(document, dict):
            return
        for table, consumers in document.items():
            if not isinstance(consumers, dict):
                continue
            for name, fields in consumers.items():
                try:
                    state = ConsumerState(
                        cursor=int(fields["cursor"]),
                        delivered=int(fields.get("delivered", 0)),
                        missed=int(fields.get("missed", 0)),
                        last_read=float(fields.get("last_read", 0.0)),
                    )
                except (KeyError, TypeError, ValueError):
                    continue  # one damaged entry: that consumer starts afresh
                self._cursors.setdefault(str(table), {})[str(name)] = state

    def _save_locked(self) -> None:
        document = {
            table: {name: asdict(state) for name, state in consumers.items()}
            for table, consumers in self._cursors.items()
            if consumers
        }
        self._state.save(CURSORS_DOC, document)

    def _forget_idle_locked(self, now: float) -> bool:
        if self.expiry <= 0:
            return False
        cutoff = now - self.expiry
        forgotten = False
        for consumers in self._cursors.values():
            for name in [n for n, s in consumers.items() if s.last_read < cutoff]:
                del consumers[name]
                forgotten = True
        return forgotten

    def max_cursor(self, table: str) -> int:
        """The furthest any consumer of `table` has read: this run's eids must start above."""
        with self._lock:
            return max((s.cursor for s in self._cursors.get(table, {}).values()), default=0)

    # -- reading ----------------------------------------------------------------------------

    def read(
        self,
        table: str,
        ring: EventRing,
        consumer: str,
        *,
        run_start: int = 1,
        narrowing: Narrowing = Narrowing(),
    ) -> list[Entry]:
        """The events of `ring` that `consumer` has not been given, narrowed; moves its cursor.

        `run_start` is the first eid this run of the extension assigns: eids below it that
        the ring does not hold belong to an earlier run (lost with it, or never used: eids
        are reserved in blocks), so they are not counted as missed.
        """
        with self._lock:
            now = self._clock()
            ring.expire()  # by the ring's own clock, as its queries do
            # The last eid this ring has assigned (or reserved before an append, after a
            # restart): events appended from now on are the next query's.
            head = ring.next_eid - 1
            self._forget_idle_locked(now)
            consumers = self._cursors.setdefault(table, {})
            known = consumers.get(consumer)
            before = known if known is not None else ConsumerState()
            held = (
                ring.query(eid_min=before.cursor + 1, eid_max=head) if head > before.cursor else []
            )
            missed = 0
            if known is not None:
                # Eids of this run form one contiguous range: any of them after the cursor
                # and up to head that the ring no longer holds was evicted unread.
                first = max(before.cursor + 1, run_start)
                if head >= first:
                    missed = (head - first + 1) - sum(1 for entry in held if entry[0] >= first)
            given = [entry for entry in held if narrowing.keeps(entry[0], entry[1], entry[2])]
            consumers[consumer] = ConsumerState(
                cursor=max(before.cursor, head),
                delivered=before.delivered + len(given),
                missed=before.missed + missed,
                last_read=now,
            )
            try:
                self._save_locked()  # before the rows leave: at most once
            except BaseException:
                if known is None:
                    del consumers[consumer]
                else:
                    consumers[consumer] = known
                raise
            return given

    # -- audit_consumers --------------------------------------------------------------------

    def rows(self, rings: dict[str, EventRing]) -> Iterator[ConsumerRow]:
        """One row per remembered (table, consumer), idle ones forgotten first."""
        now = self._clock()
        with self._lock:
            if self._forget_idle_locked(now):
                self._save_locked()
            listing = [
                (table, name, ConsumerState(**asdict(state)))
                for table, consumers in sorted(self._cursors.items())
                for name, state in sorted(consumers.items())
            ]
        for table, name, state in listing:
            ring = rings.get(table)
            pending = 0
            if ring is not None and ring.next_eid - 1 > state.cursor:
                pending = len(ring.query(eid_min=state.cursor + 1))
            yield ConsumerRow(table, name, state, pending)
