"""The event buffer behind an evented table: rows in eid order, bounded by count and age.

The reader thread appends while queries run, so one lock guards the buffer and is held only
for O(1) appends and, for a query, for two bisections and one slice copy; filtering happens
after the lock is released.

Rows are stored as tuples in column order. Strings that repeat across events (exe, comm,
path, cwd, key, syscall, addresses ...) are interned and repeated ints (ids, times) shared,
so each row owns only its unique values: the 45-slot tuple (~370 B), eid, serial, time_ms
and pid, and its cmdline and argv strings. Measured: 100,000 process_events rows built from
realistic execve events (200 executables, 500 cwds, 2-7 arguments) take 79 MB of RSS, about
0.8 KiB per row.

eids are ints, assigned 1, 2, 3 ... per ring in append order; eviction removes from the
front, so the ring always holds a contiguous eid range and an eid maps to an index by
subtraction. Times are mostly but not strictly increasing (a blocking accept() carries the
time it started), so the ring keeps the running maximum of `time` (non-decreasing, hence
bisectable) and the largest lag of a row behind that maximum among the rows it holds:
rows before the first running maximum >= time_min are all older than time_min, and rows
after the first running maximum > time_max + lag are all newer than time_max.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from sys import intern
from typing import Any

# Columns whose values repeat across rows: stored once (interned).
INTERNED_COLUMNS = frozenset(
    {
        "action",
        "arch",
        "comm",
        "cwd",
        "env",
        "exe",
        "key",
        "local_address",
        "mode",
        "overflows",
        "path",
        "remote_address",
        "socket",
        "status",
        "syscall",
        "tty",
    }
)
# Int columns whose values are (nearly) unique per row: not worth sharing.
UNIQUE_INT_COLUMNS = frozenset({"eid", "serial", "time_ms", "pid", "cmdline_size"})
_INT_CACHE_MAX = 4096  # shared int objects kept (ints above 256 are separate objects)
_COMPACT_AFTER = 1024  # evicted slots kept before the list is compacted


class EventRing:
    """A thread-safe, bounded buffer of one table's rows with monotonic eids.

    `capacity` bounds the row count (oldest evicted first). `expiry` (seconds) bounds age:
    a row whose own `time` is more than `expiry` before the clock is evicted, oldest
    first; 0 turns age eviction off (as osquery's events_expiry=0). The clock defaults to
    time.time; pass another for deterministic tests.
    """

    def __init__(
        self,
        columns: Sequence[str],
        capacity: int,
        expiry: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be at least 1")
        self.columns = tuple(columns)
        for required in ("eid", "time", "pid"):
            if required not in self.columns:
                raise ValueError(f"ring columns need {required!r}")
        self._capacity = capacity
        self.expiry = expiry
        self._clock = clock
        self._eid_index = self.columns.index("eid")
        self._time_index = self.columns.index("time")
        self._pid_index = self.columns.index("pid")
        self._interned = tuple(i for i, c in enumerate(self.columns) if c in INTERNED_COLUMNS)
        self._shared_ints = tuple(
            i
            for i, c in enumerate(self.columns)
            if c not in UNIQUE_INT_COLUMNS and c not in INTERNED_COLUMNS
        )
        self._int_cache: dict[int, int] = {}
        self._lock = threading.Lock()
        self._rows: list[tuple] = []  # evicted slots hold () until compaction
        self._running_max: list[int | float] = []  # max of time over rows[0..i]
        self._lags: deque[tuple[int, int | float]] = deque()  # (eid, lag), lags decreasing
        self._start = 0  # index of the oldest row held
        self._first_eid = 1  # eid of rows[_start]
        self._next_eid = 1
        self._evicted = 0
        self._evicted_by_age = 0

    # -- counters ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows) - self._start

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def evicted(self) -> int:
        """Rows evicted so far, by count or by age."""
        return self._evicted

    @property
    def evicted_by_age(self) -> int:
        return self._evicted_by_age

    @property
    def last_eid(self) -> int:
        """The eid of the newest row appended (0 before the first)."""
        return self._next_eid - 1

    # -- writing ----------------------------------------------------------------------------

    def append(self, row: Mapping[str, object]) -> int:
        """Store a row (a column -> value mapping; eid is assigned here); return its eid.

        A row without a time is kept but never matches a time constraint.
        """
        get = row.get
        values: list[Any] = [get(name) for name in self.columns]
        for index in self._interned:
            value = values[index]
            if value.__class__ is str:
                values[index] = intern(value)
        cache = self._int_cache
        for index in self._shared_ints:
            value = values[index]
            if value.__class__ is int:  # not bool: True == 1 must not stand in for 1
                shared = cache.get(value)
                if shared is None:
                    if len(cache) >= _INT_CACHE_MAX:
                        cache.clear()
                    cache[value] = value
                else:
                    values[index] = shared
        when = values[self._time_index]
        now = self._clock()
        with self._lock:
            eid = self._next_eid
            self._next_eid = eid + 1
            values[self._eid_index] = eid
            rows = self._rows
            running = self._running_max
            previous = running[-1] if len(rows) > self._start else None
            if when is None or not isinstance(when, (int, float)):
                peak = previous if previous is not None else float("-inf")
            elif previous is None or when >= previous:
                peak = when
            else:
                peak = previous
                self._note_lag(eid, previous - when)
            rows.append(tuple(values))
            running.append(peak)
            if len(rows) - self._start > self._capacity:
                self._evict_front()
            self._expire_locked(now)
            return eid

    def _note_lag(self, eid: int, lag: int | float) -> None:
        lags = self._lags
        while lags and lags[-1][1] <= lag:
            lags.pop()
        lags.append((eid, lag))

    def _evict_front(self, by_age: bool = False) -> None:
        self._rows[self._start] = ()
        self._start += 1
        self._first_eid += 1
        self._evicted += 1
        if by_age:
            self._evicted_by_age += 1
        lags = self._lags
        while lags and lags[0][0] < self._first_eid:
            lags.popleft()
        if self._start >= _COMPACT_AFTER and self._start * 2 >= len(self._rows):
            del self._rows[: self._start]
            del self._running_max[: self._start]
            self._start = 0

    def _expire_locked(self, now: float) -> None:
        if self.expiry <= 0:
            return
        cutoff = now - self.expiry
        rows = self._rows
        index = self._time_index
        while self._start < len(rows):
            when = rows[self._start][index]
            if when is None or not isinstance(when, (int, float)) or when >= cutoff:
                break
            self._evict_front(by_age=True)

    def expire(self, now: float | None = None) -> None:
        """Evict rows older than `expiry` against `now` (default: the ring's clock)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._expire_locked(now)

    # -- reading ----------------------------------------------------------------------------

    def query(
        self,
        *,
        time_min: float | None = None,
        time_max: float | None = None,
        eid_min: int | None = None,
        eid_max: int | None = None,
        pids: Collection[int] | None = None,
    ) -> list[tuple]:
        """Rows in eid order matching every given bound (all inclusive) and the pid set."""
        now = self._clock()
        with self._lock:
            self._expire_locked(now)
            start, end = self._start, len(self._rows)
            low, high = start, end
            if eid_min is not None:
                low = max(low, start + (eid_min - self._first_eid))
            if eid_max is not None:
                high = min(high, start + (eid_max - self._first_eid) + 1)
            if time_min is not None and low < high:
                low = max(low, bisect_left(self._running_max, time_min, start, end))
            if time_max is not None and low < high:
                lag = self._lags[0][1] if self._lags else 0
                high = min(high, bisect_right(self._running_max, time_max + lag, start, end))
            snapshot = self._rows[low:high] if low < high else []
        if time_min is not None or time_max is not None:
            ti = self._time_index
            low_t = float("-inf") if time_min is None else time_min
            high_t = float("inf") if time_max is None else time_max
            snapshot = [r for r in snapshot if (t := r[ti]) is not None and low_t <= t <= high_t]
        if pids is not None:
            pi = self._pid_index
            snapshot = [r for r in snapshot if r[pi] in pids]
        return snapshot
