"""The event buffer behind an evented table: events in eid order, bounded by count and age.

The reader thread appends while queries run, so one lock guards the buffer and is held only
for O(1) appends and, for a query, for two bisections and one slice copy; filtering happens
after the lock is released.

The ring holds what a query filters on (time, pid) and an opaque item (the event in the
compact form routing.py keeps); rows are built from items only for the entries a query
returns. time and pid ints that repeat are shared. eids are ints, assigned next_eid,
next_eid + 1, ... per ring in append order, and never reused. Entries restored after a
restart keep their eids, and the next run's eids may start further on (eids are reserved in
blocks), so the ring holds a few runs of consecutive eids: eids are not stored, an eid maps
to an index by one subtraction within its run (one run but across a restart).

Times are mostly but not strictly increasing (a blocking accept() carries the time it
started), so the ring keeps the running maximum of `time` (non-decreasing, hence
bisectable) and the largest lag of an entry behind that maximum among the entries it holds:
entries before the first running maximum >= time_min are all older than time_min, and
entries after the first running maximum > time_max + lag are all newer than time_max.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from itertools import chain
from operator import itemgetter

_INT_CACHE_MAX = 4096  # shared int objects kept (ints above 256 are separate objects)
_COMPACT_AFTER = 1024  # evicted slots kept before the list is compacted
_EXPIRE_EVERY = 0.5  # seconds between age checks on append (queries always check)

Entry = tuple[int, "int | None", "int | None", object]  # (eid, time, pid, item)


class EventRing:
    """A thread-safe, bounded buffer of one table's events with monotonic eids.

    `capacity` bounds the entry count (oldest evicted first). `expiry` (seconds) bounds age:
    an entry whose `time` is more than `expiry` before the clock is evicted, oldest first;
    0 turns age eviction off (as osquery's events_expiry=0). The clock defaults to
    time.time; pass another for deterministic tests. `next_eid` is the eid of the first
    entry appended: a restarted extension continues above every eid it ever handed out.
    """

    def __init__(
        self,
        capacity: int,
        expiry: float,
        clock: Callable[[], float] = time.time,
        next_eid: int = 1,
    ) -> None:
        """next_eid: the eid of the first entry appended (eids never go back across runs)."""
        if capacity < 1:
            raise ValueError("ring capacity must be at least 1")
        if next_eid < 1:
            raise ValueError("eids start at 1")
        self._capacity = capacity
        self.expiry = expiry
        self._clock = clock
        self._int_cache: dict[int, int] = {}
        self._lock = threading.Lock()
        self._entries: list[tuple] = []  # (time, pid, item); evicted slots hold () until compaction
        self._running_max: list[int | float] = []  # max of time over entries[0..i]
        self._lags: deque[tuple[int, int | float]] = deque()  # (eid, lag), lags decreasing
        self._start = 0  # index of the oldest entry held
        self._first_eid = next_eid  # eid of entries[_start]
        self._next_eid = next_eid
        self._tail_eid = 0  # eid of the newest entry stored (0 before the first)
        # [index, eid] where each run of consecutive eids starts; runs[0] holds _start.
        self._runs: deque[list[int]] = deque([[0, next_eid]])
        self._evicted = 0
        self._evicted_by_age = 0
        self._next_expire = float("-inf")

    # -- counters ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries) - self._start

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def evicted(self) -> int:
        """Entries evicted so far, by count or by age."""
        return self._evicted

    @property
    def evicted_by_age(self) -> int:
        return self._evicted_by_age

    @property
    def last_eid(self) -> int:
        """The eid of the newest entry stored, appended or restored (0 before the first)."""
        return self._tail_eid

    @property
    def first_eid(self) -> int:
        """The eid of the oldest entry held (the next eid when the ring is empty)."""
        with self._lock:
            return self._first_eid if len(self._entries) > self._start else self._next_eid

    @property
    def next_eid(self) -> int:
        """The eid the next append gets."""
        return self._next_eid

    # -- writing ----------------------------------------------------------------------------

    def append(self, when: int | None, pid: int | None, item: object) -> int:
        """Store an event's item with the time and pid queries filter on; return its eid.

        An entry without a time is kept but never matches a time constraint. Repeated time
        and pid values share one int object.
        """
        return self.append_many(((when, pid, item),))

    def append_many(self, entries: Sequence[tuple[int | None, int | None, object]]) -> int:
        """`append` of each (time, pid, item) in order, under one lock and one reading of the
        clock (a reader batch's events); the first one's eid, the others' follow it (the next
        eid when there are none)."""
        cache = self._int_cache
        stored = []
        for when, pid, item in entries:
            if len(cache) >= _INT_CACHE_MAX:
                cache.clear()
            if when is not None:
                when = cache.setdefault(when, when)
            if pid is not None:
                pid = cache.setdefault(pid, pid)
            stored.append((when, pid, item))
        now = self._clock()
        store = self._store
        with self._lock:
            first = eid = self._next_eid
            for entry in stored:
                store(eid, entry, now)
                eid += 1
            self._next_eid = eid
        return first

    def restore(self, entries: Iterable[Entry], next_eid: int = 1) -> int:
        """Put back entries kept across a restart, in eid order, keeping their eids; the next
        append gets at least `next_eid` (and more than every eid held). Entries not newer than
        the newest held are skipped. Returns how many were restored."""
        now = self._clock()
        restored = 0
        with self._lock:
            for eid, when, pid, item in entries:
                if eid <= self._tail_eid:
                    continue
                self._store(eid, (when, pid, item), now)
                restored += 1
            self._next_eid = max(self._next_eid, self._tail_eid + 1, next_eid)
        return restored

    def _store(self, eid: int, entry: tuple, now: float) -> None:
        """Append one entry under the lock: index, runs, eviction by count and age."""
        entries = self._entries
        when = entry[0]
        if len(entries) == self._start:  # empty: this entry starts the only run
            self._runs = deque([[len(entries), eid]])
            self._first_eid = eid
            previous = None
        else:
            if eid != self._tail_eid + 1:
                self._runs.append([len(entries), eid])
            previous = self._running_max[-1]
        self._tail_eid = eid
        running = self._running_max
        if when is None:
            peak = previous if previous is not None else float("-inf")
        elif previous is None or when >= previous:
            peak = when
        else:
            peak = previous
            self._note_lag(eid, previous - when)
        entries.append(entry)
        running.append(peak)
        if len(entries) - self._start > self._capacity:
            self._evict_front()
        if now >= self._next_expire:
            self._expire_locked(now)
            self._next_expire = now + _EXPIRE_EVERY

    def _note_lag(self, eid: int, lag: int | float) -> None:
        lags = self._lags
        while lags and lags[-1][1] <= lag:
            lags.pop()
        lags.append((eid, lag))

    def _evict_front(self, by_age: bool = False) -> None:
        self._entries[self._start] = ()
        self._start += 1
        runs = self._runs
        if len(runs) > 1 and runs[1][0] == self._start:
            runs.popleft()  # a restart's gap: the next entry starts the next run
            self._first_eid = runs[0][1]
        else:
            self._first_eid += 1
        self._evicted += 1
        if by_age:
            self._evicted_by_age += 1
        lags = self._lags
        while lags and lags[0][0] < self._first_eid:
            lags.popleft()
        if self._start >= _COMPACT_AFTER and self._start * 2 >= len(self._entries):
            del self._entries[: self._start]
            del self._running_max[: self._start]
            for run in self._runs:
                run[0] -= self._start
            self._start = 0

    def _expire_locked(self, now: float) -> None:
        if self.expiry <= 0:
            return
        cutoff = now - self.expiry
        entries = self._entries
        while self._start < len(entries):
            when = entries[self._start][0]
            if when is None or when >= cutoff:
                break
            self._evict_front(by_age=True)

    def expire(self, now: float | None = None) -> None:
        """Evict entries older than `expiry` against `now` (default: the ring's clock)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._expire_locked(now)

    # -- reading ----------------------------------------------------------------------------

    def _index_of(self, eid: int) -> int:
        """The index of the first entry held whose eid is >= `eid` (the end if none)."""
        runs = self._runs
        end = len(self._entries)
        for number, (index, first) in enumerate(runs):
            stop = runs[number + 1][0] if number + 1 < len(runs) else end
            if eid < first + (stop - index):
                return max(self._start, index + max(eid - first, 0))
        return end

    def _eids(self, low: int, high: int) -> Iterable[int]:
        """The eids of entries[low:high]: one range per run it spans."""
        runs = self._runs
        if len(runs) == 1:
            index, first = runs[0]
            return range(first + low - index, first + high - index)
        ranges = []
        for number, (index, first) in enumerate(runs):
            stop = runs[number + 1][0] if number + 1 < len(runs) else len(self._entries)
            a, b = max(low, index), min(high, stop)
            if a < b:
                ranges.append(range(first + a - index, first + b - index))
        return chain.from_iterable(ranges)

    def query(
        self,
        *,
        time_min: float | None = None,
        time_max: float | None = None,
        eid_min: int | None = None,
        eid_max: int | None = None,
        pids: Collection[int] | None = None,
    ) -> list[Entry]:
        """(eid, time, pid, item) in eid order matching every bound (inclusive) and the pid set."""
        eids, snapshot, selected = self._selected(time_min, time_max, eid_min, eid_max, pids)
        if selected is None:
            selected = zip(eids, snapshot)
        return [(eid, when, pid, item) for eid, (when, pid, item) in selected]

    def query_items(
        self,
        *,
        time_min: float | None = None,
        time_max: float | None = None,
        eid_min: int | None = None,
        eid_max: int | None = None,
        pids: Collection[int] | None = None,
    ) -> tuple[list[int], list[object]]:
        """query()'s eids and items, as two lists: no tuple per entry (a scan that builds
        rows reads the items alone)."""
        eids, snapshot, selected = self._selected(time_min, time_max, eid_min, eid_max, pids)
        if selected is None:
            return list(eids), list(map(itemgetter(2), snapshot))
        pairs = list(selected)
        return [eid for eid, _entry in pairs], [entry[2] for _eid, entry in pairs]

    def _selected(
        self,
        time_min: float | None,
        time_max: float | None,
        eid_min: int | None,
        eid_max: int | None,
        pids: Collection[int] | None,
    ) -> tuple[Iterable[int], list[tuple], Iterable[tuple[int, tuple]] | None]:
        """The eids and entries between the bounds found by bisection, and (when a time or
        pid bound leaves some out) the (eid, entry) pairs selected; None when all are."""
        now = self._clock()
        with self._lock:
            self._expire_locked(now)
            start, end = self._start, len(self._entries)
            low, high = start, end
            if eid_min is not None:
                low = max(low, self._index_of(eid_min))
            if eid_max is not None:
                high = min(high, self._index_of(eid_max + 1))
            if time_min is not None and low < high:
                low = max(low, bisect_left(self._running_max, time_min, start, end))
            if time_max is not None and low < high:
                lag = self._lags[0][1] if self._lags else 0
                high = min(high, bisect_right(self._running_max, time_max + lag, start, end))
            snapshot = self._entries[low:high] if low < high else []
            eids = self._eids(low, high) if snapshot else ()
        if time_min is None and time_max is None and pids is None:
            return eids, snapshot, None
        selected: Iterable[tuple[int, tuple]] = zip(eids, snapshot)
        if time_min is not None or time_max is not None:
            low_t = float("-inf") if time_min is None else time_min
            high_t = float("inf") if time_max is None else time_max
            selected = (
                (eid, entry)
                for eid, entry in selected
                if (t := entry[0]) is not None and low_t <= t <= high_t
            )
        if pids is not None:
            selected = ((eid, entry) for eid, entry in selected if entry[1] in pids)
        return eids, snapshot, selected
